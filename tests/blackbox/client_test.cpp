// client tests: being written
