"""Storage: tables as Lance datasets. `table.py` is the only code that writes one (each kind of commit a named
operation); it adds the fsyncs, checksums and recovery Lance lacks, and never calls back into the core."""
