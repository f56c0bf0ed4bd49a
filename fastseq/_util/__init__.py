"""Private helpers shared by every domain: argument checks, atomic writes, the one file format, progress bars."""
