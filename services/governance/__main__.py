from services.governance.app import main

main()
