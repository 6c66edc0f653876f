from store_service.cli import main

raise SystemExit(main())
