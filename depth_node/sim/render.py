"""Vectorised ray caster: one ray per pixel centre, analytic intersections, z-buffer, then one shading pass.

Rays are R·(x/z, y/z, 1) in the world, so the ray parameter of a hit *is* the z-depth of the optical frame:
ground-truth depth comes out exact, not via a conversion. Cost is kept near-linear in pixels: the ground is one
closed-form pass, objects are culled by distance and view, and each survivor is tested only against the pixel
rectangle its near-clipped bounding box projects to (skipped outright when the z-buffer already hides it).
Shading runs once per pixel, grouped by material, after visibility is settled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.sim import textures
from depth_node.sim.labels import SemanticClass
from depth_node.sim.noise import fbm
from depth_node.sim.scene import Kind, Primitives, Scene
from depth_node.sim.textures import Surface

SKY_ID = -1
GROUND_ID = -2
# ground sub-classes
G_ROAD, G_SIDEWALK, G_KERB, G_TERRAIN, G_PLAIN = 1, 2, 3, 4, 5
_NEAR = 0.05  # m: nearest renderable depth

_CORNERS = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=np.float64) * 2 - 1
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])
_HAZE = np.array([0.78, 0.82, 0.87], dtype=np.float32)
_DETAIL_GAIN = 1.0  # octave-to-octave amplitude ratio of the detail layer: 1 = as much texture at every scale
_DETAIL_MIN_PX = 1.25  # its finest octaves reach down to ~2.5 pixels per cycle
# detail strength per Material (painted and glazed surfaces are smoother than stone, bark or leaves)
_MAT_DETAIL = np.array([1.0, 0.3, 0.3, 0.8, 0.5, 1.0, 1.0, 0.3, 0.8, 1.0], dtype=np.float32)


@dataclass
class RenderOutput:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 z-depth in metres, inf where the ray meets nothing (sky)
    semantic: np.ndarray  # (H, W) uint16 SemanticClass
    instance: np.ndarray  # (H, W) uint16, 0 = stuff


class RayCaster:
    def __init__(self, intrinsics: Intrinsics) -> None:
        self.intr = intrinsics
        self.u = ((np.arange(intrinsics.width) - intrinsics.cx) / intrinsics.fx).astype(np.float32)
        self.v = ((np.arange(intrinsics.height) - intrinsics.cy) / intrinsics.fy).astype(np.float32)
        self.focal = 0.5 * (intrinsics.fx + intrinsics.fy)

    # ------------------------------------------------------------------------------------------- rays
    def _rays(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        R32 = R.astype(np.float32)
        u, v = self.u[None, :], self.v[:, None]
        return tuple(R32[i, 0] * u + R32[i, 1] * v + R32[i, 2] for i in range(3))  # type: ignore[return-value]

    def render(self, scene: Scene, T_world_cam: np.ndarray, t: float = 0.0, ego_s: float = 0.0) -> RenderOutput:
        """Render the scene seen by a camera with world-from-camera pose T (optical axes) at time t."""
        T = np.asarray(T_world_cam, dtype=np.float64)
        R, c = T[:3, :3], T[:3, 3]
        H, W = self.intr.height, self.intr.width
        DX, DY, DZ = self._rays(R)
        zbuf = np.full((H, W), np.inf, dtype=np.float32)
        oid = np.full((H, W), SKY_ID, dtype=np.int32)
        ground = self._ground(scene, c, DX, DY, DZ, zbuf, oid)
        prims = self._cull(scene, R, c, t, ego_s)
        if len(prims):
            self._objects(prims, R, c, DX, DY, DZ, zbuf, oid)
        return self._shade(scene, prims, ground, c, DX, DY, DZ, zbuf, oid)

    # ----------------------------------------------------------------------------------------- ground
    def _ground(self, scene: Scene, c, DX, DY, DZ, zbuf, oid) -> dict | None:
        """Flat ground at z = 0; with a street, sidewalks and terrain are raised by the kerb height.

        Hits are found in closed form per plane. |d| (distance from the centreline) is 1-Lipschitz, so a pixel
        whose lower-plane hit is further than the two planes' horizontal separation from the kerb line is
        classified without looking at the upper plane; only pixels near a kerb need both, and only pixels
        whose ray crosses a kerb need the iterative solve for the kerb's vertical face.
        """
        if not scene.ground:
            return None
        far = max(1000.0, 4.0 * scene.view_distance)
        cz = float(c[2])
        if cz <= 0:
            return None
        dzf = DZ.reshape(-1)
        idx = np.flatnonzero(dzf < -1e-7)
        dx, dy, dz = DX.reshape(-1)[idx], DY.reshape(-1)[idx], dzf[idx]
        hlen = np.sqrt(dx * dx + dy * dy)
        t0 = np.float32(-cz) / dz
        keep = t0 * hlen < far
        if not keep.all():
            idx, dx, dy, dz, t0, hlen = idx[keep], dx[keep], dy[keep], dz[keep], t0[keep], hlen[keep]
        n = len(idx)
        t_hit = t0.copy()
        gcls = np.full(n, G_PLAIN, dtype=np.uint8)
        s_road = np.zeros(n)
        d_road = np.zeros(n, dtype=np.float32)
        nl = np.zeros((n, 2), dtype=np.float32)
        st = scene.street
        if st is not None and n and cz > st.kerb_height:
            origin = (float(c[0]), float(c[1]))
            road = st.road
            segs = road.segments_near(origin[0], origin[1], scene.view_distance + 100.0)
            W, hk, sw = st.half_width, st.kerb_height, st.sidewalk_width
            t_up = np.float32(hk - cz) / dz
            s0, d0, _, _ = road.locate(t0 * dx, t0 * dy, segs, origin)
            ad0 = np.abs(d0)
            delta = np.float32(hk) * hlen / -dz  # horizontal distance between the two planes' hits
            road_sure = ad0 < W - delta
            far_sure = ad0 >= W + sw + delta
            unsure = np.flatnonzero(~road_sure & ~far_sure)
            # road for sure
            r = np.flatnonzero(road_sure)
            gcls[r] = G_ROAD
            s_road[r], d_road[r] = s0[r], d0[r]
            # terrain for sure: raised; its texture needs world x, y only
            f = np.flatnonzero(far_sure)
            gcls[f] = G_TERRAIN
            t_hit[f] = t_up[f]
            s_road[f], d_road[f] = s0[f], d0[f]
            if len(unsure):
                u = unsure
                s1, d1, _, _ = road.locate(t_up[u] * dx[u], t_up[u] * dy[u], segs, origin)
                ad1 = np.abs(d1)
                raised = ad1 >= W
                ri = u[raised]
                t_hit[ri] = t_up[ri]
                s_road[ri], d_road[ri] = s1[raised], d1[raised]
                gcls[ri] = np.where(ad1[raised] < W + sw, G_SIDEWALK, G_TERRAIN)
                low = ~raised
                on_road = low & (ad0[u] < W)
                rl = u[on_road]
                gcls[rl] = G_ROAD
                s_road[rl], d_road[rl] = s0[rl], d0[rl]
                kerb = low & ~on_road
                kl = u[kerb]
                if len(kl):
                    tk, sk, dk, nxk, nyk = self._kerb(road, segs, origin, W, dx[kl], dy[kl], t_up[kl], t0[kl],
                                                      ad1[kerb] - W, ad0[kl] - W)
                    t_hit[kl] = tk
                    s_road[kl], d_road[kl] = sk, dk
                    nl[kl, 0], nl[kl, 1] = nxk, nyk
                    gcls[kl] = G_KERB
        zf = zbuf.reshape(-1)
        of = oid.reshape(-1)
        zf[idx] = t_hit
        of[idx] = GROUND_ID
        return {"idx": idx, "t": t_hit, "cls": gcls, "s": s_road, "d": d_road, "nl": nl, "dx": dx, "dy": dy}

    @staticmethod
    def _kerb(road, segs, origin, W, dx, dy, a, b, fa, fb):
        """The ray parameter where |d| = W between a (inside, fa < 0) and b (outside, fb ≥ 0): regula falsi
        with the Illinois fix. |d| is linear along the ray at straight kerbs (one step is exact), nearly so at
        curves."""
        a, b = a.astype(np.float64), b.astype(np.float64)
        fa, fb = fa.astype(np.float64), fb.astype(np.float64)
        dx64, dy64 = dx.astype(np.float64), dy.astype(np.float64)
        side = np.zeros(len(a), dtype=np.int8)
        for _ in range(6):
            den = fb - fa
            m = b - fb * (b - a) / np.where(den != 0, den, 1e-12)
            m = np.clip(m, np.minimum(a, b), np.maximum(a, b))
            _, dm, _, _ = road.locate(m * dx64, m * dy64, segs, origin)
            fm = np.abs(dm).astype(np.float64) - W
            inside = fm < 0
            fa = np.where(inside, fm, np.where(side == -1, fa * 0.5, fa))
            fb = np.where(~inside, fm, np.where(side == 1, fb * 0.5, fb))
            a = np.where(inside, m, a)
            b = np.where(inside, b, m)
            side = np.where(inside, 1, -1).astype(np.int8)
        tk = np.where(np.abs(fa) < np.abs(fb), a, b)
        sk, dk, nxk, nyk = road.locate(tk * dx64, tk * dy64, segs, origin)
        return tk.astype(np.float32), sk, dk, nxk, nyk

    # ---------------------------------------------------------------------------------------- objects
    def _cull(self, scene: Scene, R, c, t: float, ego_s: float) -> Primitives:
        parts = []
        st = scene.static
        if len(st):
            rel = st.center - c
            rad = st.radius
            dist = np.sqrt((rel**2).sum(1))
            fwd = rel @ R[:, 2]
            keep = (dist - rad < scene.view_distance) & (fwd > -rad)
            parts.append(st.take(np.flatnonzero(keep)))
        dyn = scene.dynamic(t, ego_s)
        if dyn is not None and len(dyn):
            parts.append(dyn)
        return Primitives.concat(parts)

    def _objects(self, prims: Primitives, R, c, DX, DY, DZ, zbuf, oid) -> None:
        H, W = zbuf.shape
        intr = self.intr
        cy_, sy_ = np.cos(prims.yaw), np.sin(prims.yaw)
        local = _CORNERS[None, :, :] * prims.half[:, None, :]
        wx = prims.center[:, None, 0] + cy_[:, None] * local[..., 0] - sy_[:, None] * local[..., 1]
        wy = prims.center[:, None, 1] + sy_[:, None] * local[..., 0] + cy_[:, None] * local[..., 1]
        wz = prims.center[:, None, 2] + local[..., 2]
        cam = np.stack([wx - c[0], wy - c[1], wz - c[2]], axis=-1) @ R  # (M, 8, 3) optical coords
        a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]
        za, zb = a[..., 2], b[..., 2]
        cross = (za - _NEAR) * (zb - _NEAR) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(cross, (_NEAR - za) / (zb - za), 0.0)
        clip = a + (b - a) * f[..., None]
        pts = np.concatenate([cam, clip], axis=1)
        valid = np.concatenate([cam[..., 2] >= _NEAR, cross], axis=1)
        z = np.where(valid, np.maximum(pts[..., 2], _NEAR), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            pu = intr.fx * pts[..., 0] / z + intr.cx
            pv = intr.fy * pts[..., 1] / z + intr.cy
        any_valid = valid.any(axis=1)
        big = np.inf
        u0 = np.floor(np.where(valid, pu, big).min(1))
        u1 = np.ceil(np.where(valid, pu, -big).max(1))
        v0 = np.floor(np.where(valid, pv, big).min(1))
        v1 = np.ceil(np.where(valid, pv, -big).max(1))
        zmin = np.where(valid, z, big).min(1)
        order = np.argsort(zmin)
        for j in order:
            if not any_valid[j] or u1[j] < 0 or v1[j] < 0 or u0[j] > W - 1 or v0[j] > H - 1:
                continue
            rows = slice(int(max(v0[j], 0)), int(min(v1[j], H - 1)) + 1)
            sl = (rows, slice(int(max(u0[j], 0)), int(min(u1[j], W - 1)) + 1))
            zs = zbuf[sl]
            if zs.size == 0 or zmin[j] > zs.max():
                continue
            kind = prims.kind[j]
            o = c - prims.center[j]
            if kind == Kind.BOX:
                th = _hit_box(o, prims.yaw[j], prims.half[j], DX[sl], DY[sl], DZ[sl])
            elif kind == Kind.CYLINDER:
                th = _hit_cylinder(o, prims.half[j], DX[sl], DY[sl], DZ[sl])
            else:
                th = _hit_sphere(o, prims.half[j, 0], DX[sl], DY[sl], DZ[sl])
            upd = th < zs
            zs[upd] = th[upd]
            oid[sl][upd] = j

    # ---------------------------------------------------------------------------------------- shading
    def _shade(self, scene: Scene, prims: Primitives, ground, c, DX, DY, DZ, zbuf, oid) -> RenderOutput:
        H, W = zbuf.shape
        lit = scene.lighting
        n_pix = H * W
        rgb = np.empty((n_pix, 3), dtype=np.float32)
        sem = np.zeros(n_pix, dtype=np.uint16)
        inst = np.zeros(n_pix, dtype=np.uint16)
        of = oid.reshape(-1)
        zf = zbuf.reshape(-1)
        dxf, dyf, dzf = DX.reshape(-1), DY.reshape(-1), DZ.reshape(-1)
        az = np.deg2rad(lit.sun_azimuth_deg) + scene.sun_heading
        el = np.deg2rad(lit.sun_elevation_deg)
        sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], dtype=np.float32)

        sky = np.flatnonzero(of == SKY_ID)
        if len(sky):
            rgb[sky] = textures.sky(dxf[sky], dyf[sky], dzf[sky], 7, lit.sky_clouds)
            sem[sky] = SemanticClass.SKY

        def finish(pix, albedo, normal, dist, p, q, seed, fw, strength=1.0, sunlit=None):
            # pixel-scale detail on every surface (band-limited like all texture): real images have texture
            # down to the pixel, and photometric losses need it to lock on at full resolution
            detail = fbm(p, q, seed, fw, 4.0, 6, gain=_DETAIL_GAIN, min_px=_DETAIL_MIN_PX)
            ndl = np.maximum(normal @ sun, 0.0)
            if sunlit is not None:
                ndl = ndl * sunlit
            col = albedo * ((lit.ambient + lit.sun_intensity * ndl) * (1.0 + lit.detail * strength * detail))[:, None]
            fog = (1.0 - np.exp(-dist / lit.haze_distance)).astype(np.float32)
            rgb[pix] = col + (_HAZE - col) * fog[:, None]

        if ground is not None and len(ground["idx"]):
            g = ground
            vis = of[g["idx"]] == GROUND_ID
            pix = g["idx"][vis]
            t = g["t"][vis]
            gx = c[0] + t * g["dx"][vis]
            gy = c[1] + t * g["dy"][vis]
            gcls = g["cls"][vis]
            s_r, d_r = g["s"][vis], g["d"][vis]
            dz = dzf[pix].astype(np.float64)
            rlen = np.sqrt(g["dx"][vis] ** 2 + g["dy"][vis] ** 2 + dz**2)
            dist = (t * rlen).astype(np.float32)
            cosg = np.abs(dz) / rlen
            fw = (dist / self.focal / np.sqrt(np.maximum(cosg, 0.03))).astype(np.float32)
            albedo = np.empty((len(pix), 3), dtype=np.float32)
            normal = np.zeros((len(pix), 3), dtype=np.float32)
            normal[:, 2] = 1.0
            pd, qd = gx.copy(), gy.copy()
            st = scene.street
            seed = 1234
            for cls in np.unique(gcls):
                m = np.flatnonzero(gcls == cls)
                if (cls == G_PLAIN or st is None) and scene.floor is not None:
                    albedo[m] = textures.floor_surface(gx[m], gy[m], fw[m], seed, *scene.floor)
                elif cls == G_PLAIN or st is None:
                    albedo[m] = textures.plain_ground(gx[m], gy[m], fw[m], seed)
                elif cls == G_ROAD:
                    albedo[m] = textures.road_surface(gx[m], gy[m], s_r[m], d_r[m], fw[m], seed, st.half_width,
                                                      st.lane_width, st.crosswalks)
                elif cls == G_SIDEWALK:
                    albedo[m] = textures.sidewalk_surface(gx[m], gy[m], s_r[m], d_r[m], fw[m], seed, st.half_width)
                elif cls == G_TERRAIN:
                    albedo[m] = textures.terrain_surface(gx[m], gy[m], fw[m], seed)
                else:  # kerb face
                    z = (c[2] + t[m] * dz[m]).astype(np.float32)
                    nlv = g["nl"][vis][m]
                    sgn = -np.sign(d_r[m])[:, None]
                    normal[m, :2] = sgn * nlv
                    normal[m, 2] = 0.0
                    cosk = np.abs((normal[m, 0] * g["dx"][vis][m] + normal[m, 1] * g["dy"][vis][m]) / rlen[m])
                    fw[m] = dist[m] / self.focal / np.sqrt(np.maximum(cosk, 0.03))
                    albedo[m] = textures.kerb_face(s_r[m], z, gx[m], gy[m], fw[m], seed)
                    pd[m], qd[m] = s_r[m], z
            sunlit = None
            if lit.shadows and len(prims):
                P = np.stack([gx, gy, c[2] + t.astype(np.float64) * dz], axis=1)
                sunlit = (~_in_shadow(prims, sun.astype(np.float64), P)).astype(np.float32)
            finish(pix, albedo, normal, dist, pd, qd, np.uint32(seed + 99), fw, sunlit=sunlit)
            sem[pix] = np.choose(
                gcls,
                [0, SemanticClass.ROAD, SemanticClass.SIDEWALK, SemanticClass.SIDEWALK, SemanticClass.TERRAIN,
                 SemanticClass.ROAD],
            ).astype(np.uint16)
            if scene.floor is not None:
                sem[pix[gcls == G_PLAIN]] = SemanticClass.FLOOR

        obj = np.flatnonzero(of >= 0)
        if len(obj):
            j = of[obj]
            t = zf[obj]
            dirs = np.stack([dxf[obj], dyf[obj], dzf[obj]], axis=1)
            rel = (c[None, :] - prims.center[j]).astype(np.float32) + t[:, None] * dirs
            yaw = prims.yaw[j]
            cy_, sy_ = np.cos(yaw).astype(np.float32), np.sin(yaw).astype(np.float32)
            local = np.stack([cy_ * rel[:, 0] + sy_ * rel[:, 1], -sy_ * rel[:, 0] + cy_ * rel[:, 1], rel[:, 2]], 1)
            half = prims.half[j].astype(np.float32)
            kind = prims.kind[j]
            ratio = np.abs(local) / half
            face = np.argmax(ratio, axis=1).astype(np.int8)
            # cylinders: side unless the cap is the closer match; spheres: one face
            radial = np.hypot(local[:, 0], local[:, 1]) / half[:, 0]
            is_cyl = kind == Kind.CYLINDER
            face = np.where(is_cyl, np.where(ratio[:, 2] > radial, 2, 0), face).astype(np.int8)
            face = np.where(kind == Kind.SPHERE, 0, face).astype(np.int8)
            sign = np.sign(np.take_along_axis(local, face[:, None].astype(np.int64), 1)[:, 0]).astype(np.float32)
            sign[sign == 0] = 1.0
            n_local = np.zeros_like(local)
            is_box = kind == Kind.BOX
            rows = np.arange(len(obj))
            n_local[rows, face.astype(np.int64)] = sign
            side = is_cyl & (face == 0)
            n_local[side, 0] = local[side, 0] / (radial[side] * half[side, 0])
            n_local[side, 1] = local[side, 1] / (radial[side] * half[side, 0])
            sph = kind == Kind.SPHERE
            n_local[sph] = local[sph] / half[sph, :1]
            n_local[~is_box & ~sph & ~side, :2] = 0.0
            normal = np.stack(
                [cy_ * n_local[:, 0] - sy_ * n_local[:, 1], sy_ * n_local[:, 0] + cy_ * n_local[:, 1], n_local[:, 2]], 1
            )
            rlen = np.sqrt((dirs**2).sum(1))
            dist = t * rlen
            cos_i = np.abs((normal * dirs).sum(1)) / rlen
            fw = (dist / self.focal / np.sqrt(np.maximum(cos_i, 0.03))).astype(np.float32)
            mats = prims.material[j]
            albedo = np.empty((len(obj), 3), dtype=np.float32)
            for mat in np.unique(mats):
                m = np.flatnonzero(mats == mat)
                jm = j[m]
                surf = Surface(
                    local=local[m], face=face[m], sign=sign[m], half=half[m], color=prims.color[jm],
                    seed=prims.seed[jm], variant=prims.variant[jm], param=prims.param[jm], fw=fw[m],
                )
                albedo[m] = textures.SHADERS[int(mat)](surf)
            lx, ly, lz = local[:, 0], local[:, 1], local[:, 2]
            pd = np.where(face == 0, ly, lx)
            qd = np.where(face == 2, ly, lz)
            cyl_side = np.flatnonzero(side)
            pd[cyl_side] = np.arctan2(ly[cyl_side], lx[cyl_side]) * half[cyl_side, 0]
            sph_i = np.flatnonzero(sph)
            pd[sph_i], qd[sph_i] = lx[sph_i] + 0.5 * lz[sph_i], ly[sph_i] - 0.4 * lz[sph_i]
            finish(obj, albedo, normal, dist, pd, qd, prims.seed[j] + np.uint32(99), fw, _MAT_DETAIL[mats])
            sem[obj] = prims.semantic[j]
            inst[obj] = prims.instance[j]

        img = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(H, W, 3)
        return RenderOutput(img, zbuf, sem.reshape(H, W), inst.reshape(H, W))


# ---------------------------------------------------------------------------------------- shadows


def _in_shadow(prims: Primitives, sun: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Which ground points P (n, 3) see an object between them and the sun (unit direction `sun`): a shadow
    ray per point, tested only against objects whose shadow footprint (corners pushed along the sun down to
    the lowest point) covers it. Exact for every primitive kind: the rays use the camera rays' intersections."""
    shadow = np.zeros(len(P), dtype=bool)
    if sun[2] <= 0.02 or not len(P):
        return shadow
    cy_, sy_ = np.cos(prims.yaw), np.sin(prims.yaw)
    local = _CORNERS[None, :, :] * prims.half[:, None, :]
    wx = prims.center[:, None, 0] + cy_[:, None] * local[..., 0] - sy_[:, None] * local[..., 1]
    wy = prims.center[:, None, 1] + sy_[:, None] * local[..., 0] + cy_[:, None] * local[..., 1]
    wz = prims.center[:, None, 2] + local[..., 2]
    drop = (wz - P[:, 2].min()) / sun[2]
    xs = np.concatenate([wx, wx - drop * sun[0]], axis=1)
    ys = np.concatenate([wy, wy - drop * sun[1]], axis=1)
    x0, x1, y0, y1 = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
    d = sun.astype(np.float32)
    order = np.argsort(P[:, 0], kind="stable")  # points sorted by x: each footprint's x-range is one slice
    px = P[order, 0]
    lo, hi = np.searchsorted(px, x0, "left"), np.searchsorted(px, x1, "right")
    for j in range(len(prims)):
        if hi[j] <= lo[j]:
            continue
        sl = order[lo[j]:hi[j]]
        cand = sl[(P[sl, 1] >= y0[j]) & (P[sl, 1] <= y1[j]) & ~shadow[sl]]
        if not len(cand):
            continue
        o = (P[cand] - prims.center[j]).T  # per-point origins, one direction
        kind = prims.kind[j]
        if kind == Kind.BOX:
            th = _hit_box(o, prims.yaw[j], prims.half[j], d[0], d[1], d[2])
        elif kind == Kind.CYLINDER:
            th = _hit_cylinder(o, prims.half[j], d[0], d[1], d[2])
        else:
            th = _hit_sphere(o, prims.half[j, 0], d[0], d[1], d[2])
        shadow[cand[np.isfinite(th)]] = True
    return shadow


# ---------------------------------------------------------------------------------------- intersections


def _hit_box(o, yaw: float, half, dx, dy, dz) -> np.ndarray:
    """Slab test in the box frame; o = camera centre minus box centre (world)."""
    cy_, sy_ = float(np.cos(yaw)), float(np.sin(yaw))
    ox, oy, oz = cy_ * o[0] + sy_ * o[1], -sy_ * o[0] + cy_ * o[1], o[2]
    lx = np.float32(cy_) * dx + np.float32(sy_) * dy
    ly = np.float32(cy_) * dy - np.float32(sy_) * dx
    f32 = np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        ix, iy, iz = f32(1.0) / lx, f32(1.0) / ly, f32(1.0) / dz
        ax, bx = f32(-half[0] - ox) * ix, f32(half[0] - ox) * ix
        ay, by = f32(-half[1] - oy) * iy, f32(half[1] - oy) * iy
        az, bz = f32(-half[2] - oz) * iz, f32(half[2] - oz) * iz
        tnear = np.maximum(np.maximum(np.minimum(ax, bx), np.minimum(ay, by)), np.minimum(az, bz))
        tfar = np.minimum(np.minimum(np.maximum(ax, bx), np.maximum(ay, by)), np.maximum(az, bz))
        hit = (tnear <= tfar) & (tnear > _NEAR)
    return np.where(hit, tnear, np.float32(np.inf)).astype(np.float32, copy=False)


def _hit_cylinder(o, half, dx, dy, dz) -> np.ndarray:
    r, hz = float(half[0]), float(half[2])
    ox, oy, oz = (np.float32(v) for v in o)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = dx * dx + dy * dy
        b = ox * dx + oy * dy
        cc = np.float32(ox * ox + oy * oy - r * r)
        disc = b * b - a * cc
        ts = (-b - np.sqrt(disc)) / a
        zs = oz + ts * dz
        side = (disc >= 0) & (ts > _NEAR) & (np.abs(zs) <= hz)
        out = np.where(side, ts, np.float32(np.inf))
        for zc in (hz, -hz):
            tc = (np.float32(zc) - oz) / dz
            px, py = ox + tc * dx, oy + tc * dy
            cap = (tc > _NEAR) & (px * px + py * py <= r * r)
            out = np.where(cap & (tc < out), tc, out)
    return out.astype(np.float32, copy=False)


def _hit_sphere(o, r: float, dx, dy, dz) -> np.ndarray:
    ox, oy, oz = (np.float32(v) for v in o)
    with np.errstate(invalid="ignore"):
        a = dx * dx + dy * dy + dz * dz
        b = ox * dx + oy * dy + oz * dz
        cc = np.float32(ox * ox + oy * oy + oz * oz - r * r)
        disc = b * b - a * cc
        t = (-b - np.sqrt(disc)) / a
        hit = (disc >= 0) & (t > _NEAR)
    return np.where(hit, t, np.float32(np.inf)).astype(np.float32, copy=False)
