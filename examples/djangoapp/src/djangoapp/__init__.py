"""djangoapp: a Django notes service, the second example that bluegreen releases."""
