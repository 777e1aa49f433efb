from workflows.app import main

main()
