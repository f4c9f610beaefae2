"""What the controller shows and writes once the tests have run."""
