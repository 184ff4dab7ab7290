"""Near-duplicate documents and noisy labels found with sentence embeddings.

``shl.noise.job.run_dedup_noise`` runs the stage; the other modules hold its steps:
embeddings, the LSH join with connected components, label-noise scores and the cleaned
training view.
"""
