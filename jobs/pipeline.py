"""spark-submit entry point of the `run` stage: `spark-submit jobs/pipeline.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
