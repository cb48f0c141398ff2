from crobot.services import audit
from tests.conftest import World


def test_world_builds_and_audit_chain_verifies(world: World) -> None:
    with world.db.read() as s:
        result = audit.verify(s)
    assert result.ok, result.describe()
    assert result.checked == 14  # 3 orgs, 1 study, 2 vendors, 4 people, 4 channel links
