"""The scenario engine: knows steps and platforms only through their small interfaces."""
