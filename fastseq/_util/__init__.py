"""Private helpers shared by every domain: argument checks, atomic writes, progress bars."""
