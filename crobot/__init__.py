"""crobot: a Slack bot that keeps a clinical-study sponsor and its vendors in step.

The design card's folders (bot/, handlers/, services/, storage/, digests/) stay at the top of
the repository; this package links them in, so they install as `crobot.bot`, `crobot.handlers`,
… and nothing generic lands in site-packages.
"""
