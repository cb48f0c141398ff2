"""Domain services and rules (no Slack in here): validation, permissions, visibility,
approvals, audit. Callers own the transaction (`Database.write()`); a service raises
`UserError` before it writes anything when input is bad or not allowed."""
