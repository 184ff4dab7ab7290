"""spark-submit entry point of the `tokenize` stage: `spark-submit jobs/tokenize_notes.py --config conf/local.yaml [key=value ...]`.

The file is not named tokenize.py: Python puts the script's folder first on the import
path, and a tokenize.py there would replace the standard library module of that name.
"""

import sys

from shl.cli import main

if __name__ == "__main__":
    sys.exit(main(["tokenize", *sys.argv[1:]]))
