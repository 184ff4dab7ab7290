"""spark-submit entry point of the `label-stats` stage: `spark-submit jobs/label_stats.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["label-stats", *sys.argv[1:]]))
