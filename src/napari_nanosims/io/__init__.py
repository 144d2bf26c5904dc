"""Reading and writing Cameca NanoSIMS ``.im`` files, and the acquisition model."""
