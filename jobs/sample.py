"""spark-submit entry point of the `sample` stage: `spark-submit jobs/sample.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
