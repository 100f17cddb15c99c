print("tpufi")
