; streamfilter.synth 0.1.0: simulated detector, seed 1
; 2 x (256 fs x 256 ss) panels stored in ONE array (rows 0-255 = p0, 256-511 = p1); frames stacked along dim0

photon_energy = 12000 eV
clen = 0.075
res = 5813.953488   ; 1/0.000172 m
adu_per_photon = 1

data = /entry/data/data
dim0 = %
dim1 = ss
dim2 = fs

; bad pixels: bit 0x1 set (hot) or bit 0x4 clear (dead)
mask0_data = /entry/data/mask
mask0_goodbits = 0x4
mask0_badbits = 0x1

p0/min_fs = 0
p0/max_fs = 255
p0/min_ss = 0
p0/max_ss = 255
p0/corner_x = -128.3
p0/corner_y = -261.7
p0/fs = +1.0x
p0/ss = +1.0y

p1/min_fs = 0
p1/max_fs = 255
p1/min_ss = 256
p1/max_ss = 511
p1/corner_x = -128.3
p1/corner_y = 6.3
p1/fs = +1.0x
p1/ss = +1.0y
