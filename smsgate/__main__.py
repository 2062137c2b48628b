"""Allow `python -m smsgate`."""

from smsgate.cli import main

main()
