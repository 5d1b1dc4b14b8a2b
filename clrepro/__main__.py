from clrepro.cli import main

raise SystemExit(main())
