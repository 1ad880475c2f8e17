"""``python -m visarch.train ...`` (and ``torchrun ... -m visarch.train ...``) runs the command line."""

from visarch.train.cli import main

if __name__ == "__main__":
    main()
