"""Usage-based billing backend: the shared package deployed as a Lambda layer."""
