"""Gallery retrieval: a faiss index on disk beside a parquet table of per-image records, built by one or many
processes, searched with attribute pre-filtering.

- ``store``: the index folder (manifest, records, embeddings, faiss file), atomic writes, the build lock
- ``kinds``: the faiss kinds (flat, ivf_pq, hnsw), their parameters and defaults from the gallery size
- ``filtering``: the attribute filter (``upcolor=red,backpack=yes``) and its faiss ID selector
- ``embedding``: images -> embeddings + attribute probabilities (one inference path for gallery and queries)
- ``sharded``: the gallery embedded by N processes (Lightning predict, DDP) into shards, and reading them back
- ``build``: plan (file hashes vs the existing index), embed, merge into a new index generation
- ``search``: k nearest gallery images per query, own copies left out, re-ranking / query expansion on candidates
- ``outputs``: printed tables, CSV, grids and HTML of a search; identities from names or ground-truth CSVs
"""
