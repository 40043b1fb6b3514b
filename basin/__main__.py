from basin.cli.main import main

raise SystemExit(main())
