"""Built-in synthetic sample in the MIMIC-IV layout: discharge notes with ICD-10 codes.

See :func:`generate_sample`.
"""

from shl.sample.generator import SampleSummary, generate_sample

__all__ = ["SampleSummary", "generate_sample"]
