from boxoffice.cli import main

raise SystemExit(main())
