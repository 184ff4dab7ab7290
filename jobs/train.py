"""spark-submit entry point of the `train` stage: `spark-submit jobs/train.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
