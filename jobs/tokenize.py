"""spark-submit entry point of the `tokenize` stage: `spark-submit jobs/tokenize.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["tokenize", *sys.argv[1:]]))
