"""Part D feasibility: one-core seconds per epoch of plain model.fit for LeNet-5 (fresh weights, same pipeline)."""
import time
import gmp, keras
from evoprune.models.architectures import build
d = gmp.data()
m = build("lenet-5", (28, 28, 1), 10)
m.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
print("params", m.count_params(), flush=True)
t = gmp.EpochTimer()
ds = gmp.pipeline(d["train"][0], d["train"][1], 128, 0)
m.fit(ds.take(60), epochs=1, verbose=0)  # trace
t0 = time.perf_counter(); m.fit(ds.take(100), epochs=1, verbose=0); dt = time.perf_counter() - t0
print(f"LeNet-5 plain fit: {dt / 100 * 1000:.1f} ms/step -> {dt / 100 * 422:.1f} s per epoch (422 steps)", flush=True)
