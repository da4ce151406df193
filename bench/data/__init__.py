"""Stage 1, data: corpora loaded through `datasets.load_dataset` (`datasets`), tokenization,
vocabularies and the content-addressed token cache (`vocab`), and a corpus made ready for one
model family (`prepared`), and the data root rebuilt from public sources and checked against
its committed sha256 manifest (`build`).

May import: `bench.errors`, `bench.timing`.
"""
