"""Allow `python -m smsgate`."""

from smsgate.cli import main

if __name__ == "__main__":  # not when a child process imports the parent's main module
    main()
