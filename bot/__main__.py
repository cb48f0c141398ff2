"""`python -m crobot.bot` runs the crobot CLI."""

import sys

from crobot.bot.cli import main

sys.exit(main())
