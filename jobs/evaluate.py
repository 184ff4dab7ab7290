"""spark-submit entry point of the `evaluate` stage: `spark-submit jobs/evaluate.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
