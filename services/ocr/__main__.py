from services.ocr.app import main

main()
