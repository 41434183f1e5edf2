"""Reference learning-rate curves for tests/suite/training_schedule.rs.

PyTorch itself is not installed here (its wheel is a multi-gigabyte CUDA build), so this script
re-writes the *recursive* `get_lr()` update rules of torch.optim.lr_scheduler (PyTorch 2.x) as
they are documented and implemented there, stepping them the way `scheduler.step()` does. The
Rust code evaluates the closed forms instead, so the comparison checks one against the other.
Run with any Python 3: python3 scripts/reference/schedules.py
"""
import math


def cosine_recursive(base, t_max, eta_min, epochs):
    lrs, lr = [base], base
    for e in range(1, epochs):
        if (e - 1 - t_max) % (2 * t_max) == 0:
            lr = lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        else:
            lr = (1 + math.cos(math.pi * e / t_max)) / (1 + math.cos(math.pi * (e - 1) / t_max)) * (lr - eta_min) + eta_min
        lrs.append(lr)
    return lrs


def warm_restarts(base, t_0, t_mult, eta_min, epochs):
    lrs, t_cur, t_i = [], 0, t_0
    for _ in range(epochs):
        lrs.append(eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
        t_cur += 1
        if t_cur >= t_i:
            t_cur -= t_i
            t_i *= t_mult
    return lrs


def one_cycle(max_lr, total, pct=0.3, div=25.0, final_div=1e4, three=False):
    initial = max_lr / div
    minimum = initial / final_div
    if three:
        phases = [(float(pct * total) - 1, initial, max_lr),
                  (float(2 * pct * total) - 2, max_lr, initial),
                  (total - 1, initial, minimum)]
    else:
        phases = [(float(pct * total) - 1, initial, max_lr), (float(total - 1), max_lr, minimum)]
    lrs = []
    for step in range(total + 1):
        start = 0
        for i, (end, a, b) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                p = (step - start) / (end - start)
                lrs.append(b + (a - b) / 2.0 * (math.cos(math.pi * p) + 1))
                break
            start = end
    return lrs


def linear_then_cosine(base, start, end, total, t_max, epochs):
    # LinearLR recursion, then SequentialLR hands over to CosineAnnealingLR at the milestone.
    lrs, lr = [base * start], base * start
    for e in range(1, epochs):
        if e < total:
            lr = lr * (1.0 + (end - start) / (total * start + (e - 1) * (end - start)))
            lrs.append(lr)
        else:
            lrs.extend(cosine_recursive(base, t_max, 0.0, epochs - total))
            break
    return lrs


def plateau(base, metrics, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps=1e-8):
    lr, best = base, (math.inf if mode == "min" else -math.inf)
    bad, cool, lrs = 0, 0, []
    for m in metrics:
        if mode == "min" and threshold_mode == "rel":
            better = m < best * (1 - threshold)
        elif mode == "min":
            better = m < best - threshold
        elif threshold_mode == "rel":
            better = m > best * (threshold + 1)
        else:
            better = m > best + threshold
        if better:
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool, bad = cooldown, 0
        lrs.append(lr)
    return lrs


print("cosine", [repr(x) for x in cosine_recursive(0.1, 7, 0.001, 20)])
print("restarts", [repr(x) for x in warm_restarts(0.1, 3, 2, 0.01, 16)])
print("one_cycle", [repr(x) for x in one_cycle(0.5, 20)])
print("one_cycle3", [repr(x) for x in one_cycle(0.5, 20, three=True)])
print("warmup_cos", [repr(x) for x in linear_then_cosine(0.2, 0.25, 1.0, 4, 6, 12)])
print("plateau_min_rel", plateau(1.0, [5, 4, 4, 4.0, 3.9999, 4, 4, 3, 3, 3, 3, 3], "min", 0.5, 2, 1e-4, "rel", 1, 0.1))
print("plateau_max_abs", plateau(1.0, [-2.0, -1.0, -0.95, -0.9, -1.0, -0.85, -0.5, -0.5, -0.5], "max", 0.3, 1, 0.1, "abs", 0, 0.05))
