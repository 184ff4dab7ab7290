"""spark-submit entry point of the `dedup-noise` stage: `spark-submit jobs/dedup_noise.py --config conf/local.yaml [key=value ...]`."""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["dedup-noise", *sys.argv[1:]]))
