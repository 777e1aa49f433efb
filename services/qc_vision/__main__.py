from services.qc_vision.app import main

main()
