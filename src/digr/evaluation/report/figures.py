"""Sections: saliency panels (Figure 3) and an episode GIF with the student's map."""

from __future__ import annotations

import textwrap
from typing import Any

from digr.evaluation.report.base import Report, benchmark_obs, cmd_block, episode_frames


def panels_section(rep: Report) -> None:
    from digr import figures
    from digr.models.cnn import to_tensor
    from digr.saliency.presets import build_method

    cfg, spec = rep.cfg, rep.spec
    rep.md += ["## Saliency maps (paper Figure 3)", ""]
    n = cfg.panel_states
    png = rep.figdir / "saliency_panels.png"
    cols = [("GB perturbation\n(teacher)", "teacher", "perturbation"), ("VG (teacher)", "teacher", "vanilla")]
    if "digr" in rep.roles:
        cols.append(("VG (DIGR)", "digr", "vanilla"))
    # One more column per extra student: extended students are judged by their maps too.
    cols += [(textwrap.fill(f"VG ({s.label})", 22), s.label, "vanilla") for s in rep.pipe.students]
    key = {"kind": "panels", "weights": {r: rep.digests[r] for _, r, _ in cols}, "states": n,
           "seed": cfg.seed, "settings": {m: cfg.settings.get(m, {}) for _, _, m in cols},
           "columns": [c[0] for c in cols], "renderer": "render_panel"}

    def compute() -> dict[str, Any]:
        obs = benchmark_obs(spec.name, n, cfg.seed)
        x = to_tensor(obs, spec.obs_shape)
        maps = [(title, build_method(rep.net(r), m, task=spec.name, settings=cfg.settings.get(m))
                 .attribute(x).numpy()) for title, r, m in cols]
        # state, then each map over a dimmed copy of the state, one colour bar for all
        figures.save_panel(png, x.numpy(), dict(maps))
        return {"states": list(range(n)), "seed": cfg.seed, "file": str(png.relative_to(rep.pipe.dir))}

    rep.cache("panels", key, compute, files=[png])
    names = ", ".join(c[0].replace("\n", " ") for c in cols)
    rep.md += [f"Benchmark states 0..{n - 1} (`reset(seed={cfg.seed}+k)`), each map divided by its max; "
               f"columns: {names}.", "", "![saliency panels](figures/saliency_panels.png)", ""]
    rep.done("panels")


def gif_section(rep: Report) -> None:
    from digr import figures

    cfg, spec = rep.cfg, rep.spec
    rep.md += ["## The DIGR student's saliency over whole episodes", ""]
    if "digr" not in rep.roles:
        rep.skip("gif", "no DIGR student in this pipeline folder")
        return
    gif = rep.figdir / "digr_episode.gif"
    key = {"kind": "gif", "weights": rep.digests["digr"], "task": spec.name, "seed": cfg.seed,
           "max_frames": cfg.gif_frames, "min_frames": cfg.gif_min_frames, "fps": cfg.gif_fps}

    def compute() -> dict[str, Any]:
        frames, stats = episode_frames(rep.net("digr"), spec.name, seed=cfg.seed, max_frames=cfg.gif_frames,
                                        min_frames=cfg.gif_min_frames)
        figures.write_gif(frames, gif, fps=cfg.gif_fps)
        return stats

    ep = rep.cache("gif", key, compute, files=[gif])
    eps = ep["episodes"]
    total = sum(e["length"] + 1 for e in eps)  # each episode's frames: its states and the final one
    cut = f", first {ep['frames']} of {total} frames shown" if ep["frames"] < total else ""
    cmd = rep.command("evaluate", "performance", "--policy", rep.paths["digr"], "--task", spec.name,
                      "--episodes", str(len(eps)), "--seed", str(cfg.seed), "--json")
    seeds = f"`reset(seed={cfg.seed})`" if len(eps) == 1 else \
        f"`reset(seed={cfg.seed})` .. `reset(seed={cfg.seed + len(eps) - 1})`, one after the other"
    rows = "; ".join(f"return {e['return']:.3f}, length {e['length']}"
                     + ("" if e["success"] is None else f", success {str(e['success']).lower()}") for e in eps)
    rep.md += [f"The DIGR student acting greedily in episode{'s' if len(eps) > 1 else ''} {seeds}, its eq. 2 "
               f"vanilla-gradient map overlaid on every frame ({cfg.gif_fps:g} fps{cut}). The same "
               f"episode{'s are episodes 0..' + str(len(eps) - 1) if len(eps) > 1 else ' is episode 0'} of:",
               "", *cmd_block([cmd]), f"({rows}.)", "",
               "![DIGR episode](figures/digr_episode.gif)", ""]
    rep.done("gif")
