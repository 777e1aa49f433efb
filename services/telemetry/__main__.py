from services.telemetry.app import main

main()
