"""spark-submit entry point of the `ingest` stage: `spark-submit jobs/ingest.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
