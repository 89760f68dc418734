"""Concatenate the finished seeds of `ca11 ablate` outputs (a .json beside the .csv) into one CSV, and print per seed
the first evaluation >= 475, the lowest evaluation after it, the final one, and whether it held (issue #17).

    python collect.py ABLATE_OUT "LABEL" OUT.csv
"""
import csv, glob, os, sys
def collect(src, label, out):
    rows = []
    for f in sorted(glob.glob(f"{src}/runs/*.csv")):
        if not os.path.exists(f[:-4] + ".json"):
            continue
        for r in csv.DictReader(open(f)):
            r["algo"] = label; rows.append(r)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    return rows
def summary(rows, thr=475.0):
    seeds = sorted({int(r["seed"]) for r in rows})
    for s in seeds:
        c = [(int(r["env_steps"]), float(r["eval_return_mean"])) for r in rows if int(r["seed"]) == s]
        first = next((t for t, v in c if v >= thr), None)
        after = [v for t, v in c if first is not None and t >= first]
        held = first is not None and min(after) >= 400 and c[-1][1] >= thr
        print(f"seed {s}: first {first}, min after {min(after) if after else None}, final {c[-1][1]}, held {held}")
if __name__ == "__main__":
    summary(collect(sys.argv[1], sys.argv[2], sys.argv[3]))
