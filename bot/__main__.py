"""`python -m bot` runs the crobot CLI."""

import sys

from bot.cli import main

sys.exit(main())
