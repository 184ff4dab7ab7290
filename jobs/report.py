"""spark-submit entry point of the `report` stage: `spark-submit jobs/report.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
