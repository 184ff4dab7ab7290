"""spark-submit entry point of the `score` stage: `spark-submit jobs/score.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
