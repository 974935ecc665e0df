"""mpr: the command line for MPR."""
