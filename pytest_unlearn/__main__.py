"""``python -m pytest_unlearn``: build, verify and list ensemble stores."""

from .cli import main

raise SystemExit(main())
