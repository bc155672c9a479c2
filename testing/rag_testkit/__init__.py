"""What the tests and the benchmarks share: the sample corpus, tiny models, starting the service as users do
(`make run`, the image), tools they need installed, and waiting on ports. Installed in the dev venv by
`make install` (`pip install -e testing`); never part of the product or its image."""
