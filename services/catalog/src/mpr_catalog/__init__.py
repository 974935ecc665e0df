"""MPR catalog: the one writer of the asset and job tables."""
