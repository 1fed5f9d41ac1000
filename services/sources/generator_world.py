"""The synthetic world behind the generator: cities, merchant categories, merchants and cards.

Everything here is built once from the seed and then read by the daily simulation; it holds
arrays indexed by card or merchant number so that a day's transactions can be drawn in bulk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (name, country, lat, lon, weight); weight ~ metro population in millions for US cities and a
# travel popularity for foreign ones. "far" cities are on another continent from the US.
US_CITIES: tuple[tuple[str, float, float, float], ...] = (
    ("New York", 40.7128, -74.0060, 19.5),
    ("Los Angeles", 34.0522, -118.2437, 13.0),
    ("Chicago", 41.8781, -87.6298, 9.4),
    ("Dallas", 32.7767, -96.7970, 7.6),
    ("Houston", 29.7604, -95.3698, 7.1),
    ("Washington", 38.9072, -77.0369, 6.3),
    ("Philadelphia", 39.9526, -75.1652, 6.2),
    ("Miami", 25.7617, -80.1918, 6.1),
    ("Atlanta", 33.7490, -84.3880, 6.1),
    ("Boston", 42.3601, -71.0589, 4.9),
    ("Phoenix", 33.4484, -112.0740, 4.9),
    ("San Francisco", 37.7749, -122.4194, 4.7),
    ("Detroit", 42.3314, -83.0458, 4.4),
    ("Seattle", 47.6062, -122.3321, 4.0),
    ("Minneapolis", 44.9778, -93.2650, 3.7),
    ("San Diego", 32.7157, -117.1611, 3.3),
    ("Tampa", 27.9506, -82.4572, 3.2),
    ("Denver", 39.7392, -104.9903, 2.9),
    ("St. Louis", 38.6270, -90.1994, 2.8),
    ("Baltimore", 39.2904, -76.6122, 2.8),
    ("Orlando", 28.5384, -81.3789, 2.7),
    ("Charlotte", 35.2271, -80.8431, 2.7),
    ("San Antonio", 29.4241, -98.4936, 2.6),
    ("Portland", 45.5152, -122.6784, 2.5),
    ("Sacramento", 38.5816, -121.4944, 2.4),
    ("Pittsburgh", 40.4406, -79.9959, 2.4),
    ("Las Vegas", 36.1699, -115.1398, 2.3),
    ("Austin", 30.2672, -97.7431, 2.3),
    ("Cincinnati", 39.1031, -84.5120, 2.2),
    ("Kansas City", 39.0997, -94.5786, 2.2),
)

# (name, country, lat, lon, travel weight, far from the US)
FOREIGN_CITIES: tuple[tuple[str, str, float, float, float, bool], ...] = (
    ("Toronto", "CA", 43.6532, -79.3832, 3.0, False),
    ("Vancouver", "CA", 49.2827, -123.1207, 1.5, False),
    ("Mexico City", "MX", 19.4326, -99.1332, 2.0, False),
    ("Cancun", "MX", 21.1619, -86.8515, 3.0, False),
    ("London", "GB", 51.5074, -0.1278, 3.0, True),
    ("Paris", "FR", 48.8566, 2.3522, 2.5, True),
    ("Madrid", "ES", 40.4168, -3.7038, 1.2, True),
    ("Berlin", "DE", 52.5200, 13.4050, 1.0, True),
    ("Rome", "IT", 41.9028, 12.4964, 1.5, True),
    ("Amsterdam", "NL", 52.3676, 4.9041, 1.0, True),
    ("Bucharest", "RO", 44.4268, 26.1025, 0.3, True),
    ("Istanbul", "TR", 41.0082, 28.9784, 0.5, True),
    ("Lagos", "NG", 6.5244, 3.3792, 0.2, True),
    ("Dubai", "AE", 25.2048, 55.2708, 0.6, True),
    ("Mumbai", "IN", 19.0760, 72.8777, 0.5, True),
    ("Bangkok", "TH", 13.7563, 100.5018, 0.6, True),
    ("Manila", "PH", 14.5995, 120.9842, 0.4, True),
    ("Tokyo", "JP", 35.6762, 139.6503, 1.0, True),
    ("Sao Paulo", "BR", -23.5505, -46.6333, 0.5, True),
    ("Bogota", "CO", 4.7110, -74.0721, 0.4, True),
)

# Where a merchant of a category can be: in a shop, online, both, or an ATM.
STORE, ONLINE, MIXED, ATM = "store", "online", "mixed", "atm"

# (name, popularity, median amount in USD, spread of log amount, where it sells)
CATEGORIES: tuple[tuple[str, float, float, float, str], ...] = (
    ("grocery", 0.20, 45.0, 0.6, STORE),
    ("gas", 0.11, 40.0, 0.35, STORE),
    ("restaurant", 0.13, 28.0, 0.55, STORE),
    ("coffee", 0.07, 6.0, 0.4, STORE),
    ("pharmacy", 0.05, 22.0, 0.6, STORE),
    ("transit", 0.05, 3.5, 0.5, STORE),
    ("apparel", 0.05, 60.0, 0.7, MIXED),
    ("entertainment", 0.04, 35.0, 0.6, MIXED),
    ("electronics", 0.03, 120.0, 0.8, MIXED),
    ("jewelry", 0.01, 180.0, 0.8, STORE),
    ("travel", 0.02, 250.0, 0.8, ONLINE),
    ("online_retail", 0.10, 40.0, 0.8, ONLINE),
    ("digital_goods", 0.04, 9.0, 0.7, ONLINE),
    ("atm", 0.07, 80.0, 0.5, ATM),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c[0] for c in CATEGORIES)
CAT = {name: i for i, name in enumerate(CATEGORY_NAMES)}
N_CAT = len(CATEGORIES)

# Categories every card uses; the others each card may or may not use (what it never uses is
# what a night spree goes for).
_ALWAYS_USED = ("grocery", "gas", "restaurant", "online_retail")
# Shops every city has.
_BASICS = ("grocery", "gas", "restaurant", "coffee", "pharmacy")

CHANNELS: tuple[str, ...] = ("card_present", "online", "atm")
CARD_PRESENT, ONLINE_CH, ATM_CH = 0, 1, 2


def _hour_profiles() -> np.ndarray:
    """Cumulative hour-of-day distributions: weekday, weekend, night-owl weekday, night-owl weekend."""
    weekday = np.array([1.0, 0.5, 0.3, 0.2, 0.25, 0.6, 1.5, 3, 4, 4.5, 5, 6,
                        7.5, 6.5, 5, 5, 5.5, 6.5, 7.5, 7, 6, 4.5, 3, 1.8])
    weekend = np.array([1.6, 1.0, 0.6, 0.3, 0.25, 0.4, 0.8, 1.5, 2.5, 4, 5.5, 6.5,
                        7.5, 7.5, 7, 6.5, 6.5, 6.5, 7, 7, 6, 5, 3.5, 2.5])
    rows = [weekday, weekend, np.roll(weekday, 3), np.roll(weekend, 3)]
    return np.stack([np.cumsum(r) / r.sum() for r in rows])


HOUR_CDF = _hour_profiles()


def _category_hour_weights() -> np.ndarray:
    """How much more or less likely each category is at each hour (shops close at night)."""
    w = np.ones((N_CAT, 24))
    night = slice(0, 6)
    for name, factor in (("jewelry", 0.03), ("apparel", 0.05), ("electronics", 0.1),
                         ("coffee", 0.1), ("grocery", 0.3), ("pharmacy", 0.4),
                         ("restaurant", 0.5), ("transit", 0.4)):
        w[CAT[name], night] = factor
    w[CAT["coffee"], 6:11] = 3.0
    w[CAT["restaurant"], 11:14] = 2.0
    w[CAT["restaurant"], 18:22] = 2.0
    w[CAT["transit"], 7:10] = 2.5
    w[CAT["transit"], 16:19] = 2.5
    for name in ("online_retail", "digital_goods", "travel", "atm"):
        w[CAT[name], night] = 1.5
    return w


CATEGORY_HOUR = _category_hour_weights()
# Weekends: more eating out and leisure, less commuting.
CATEGORY_WEEKEND = np.ones(N_CAT)
for _name, _factor in (("restaurant", 1.4), ("entertainment", 1.8), ("apparel", 1.4),
                       ("transit", 0.4), ("gas", 0.8), ("coffee", 0.8)):
    CATEGORY_WEEKEND[CAT[_name]] = _factor


@dataclass(frozen=True)
class Cities:
    """All cities, US first: coordinates, country code and whether they are far from the US."""

    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray  # object array of ISO codes
    far: np.ndarray  # bool
    weight: np.ndarray
    n_us: int


def build_cities() -> Cities:
    lat = [c[1] for c in US_CITIES] + [c[2] for c in FOREIGN_CITIES]
    lon = [c[2] for c in US_CITIES] + [c[3] for c in FOREIGN_CITIES]
    country = ["US"] * len(US_CITIES) + [c[1] for c in FOREIGN_CITIES]
    far = [False] * len(US_CITIES) + [c[5] for c in FOREIGN_CITIES]
    weight = [c[3] for c in US_CITIES] + [c[4] for c in FOREIGN_CITIES]
    return Cities(np.array(lat), np.array(lon), np.array(country, dtype=object),
                  np.array(far), np.array(weight), len(US_CITIES))


@dataclass(frozen=True)
class Merchants:
    """Merchant table plus lookup indexes for "a merchant of category c in city k"."""

    ids: np.ndarray  # object array of "merch-..." strings
    category: np.ndarray  # int8 category index
    channel: np.ndarray  # int8 index into CHANNELS
    city: np.ndarray  # int16 city index (registered location for online merchants)
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray  # object array
    # Physical (shop and ATM) merchants sorted by city * N_CAT + category, with the sort keys.
    by_city_cat: np.ndarray
    city_cat_keys: np.ndarray
    # Physical merchants sorted by city, with the sort keys.
    by_city: np.ndarray
    city_keys: np.ndarray
    # Online merchants sorted by category, with the sort keys.
    online_by_cat: np.ndarray
    online_cat_keys: np.ndarray

    def in_group(self, order: np.ndarray, keys: np.ndarray, key: np.ndarray,
                 u: np.ndarray) -> np.ndarray:
        """Pick, for each key, the member at fraction u of its group; -1 where the group is empty."""
        lo = np.searchsorted(keys, key, side="left")
        hi = np.searchsorted(keys, key, side="right")
        count = hi - lo
        pick = lo + np.minimum((u * count).astype(np.int64), np.maximum(count - 1, 0))
        out = np.where(count > 0, order[np.minimum(pick, len(order) - 1)], -1)
        return out

    def physical(self, city: np.ndarray, cat: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A shop or ATM of the category in the city, or any physical merchant there; -1 if none."""
        m = self.in_group(self.by_city_cat, self.city_cat_keys, city * N_CAT + cat, u)
        missing = m < 0
        if missing.any():
            m[missing] = self.in_group(self.by_city, self.city_keys, city[missing], u[missing])
        return m

    def online(self, cat: np.ndarray, u: np.ndarray) -> np.ndarray:
        """An online merchant of the category; -1 where there is none."""
        return self.in_group(self.online_by_cat, self.online_cat_keys, cat, u)


def _jitter(rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray,
            km: float) -> tuple[np.ndarray, np.ndarray]:
    """Scatter points around centres with a normal spread of about `km` kilometres."""
    dlat = rng.normal(0.0, km / 111.0, len(lat))
    dlon = rng.normal(0.0, km / 111.0, len(lat)) / np.cos(np.radians(lat))
    return np.round(lat + dlat, 5), np.round(lon + dlon, 5)


def _allocate(rng: np.random.Generator, n: int, names: list[str]) -> np.ndarray:
    """n category indices drawn by popularity among `names`, each present at least once."""
    idx = np.array([CAT[x] for x in names])
    p = np.array([CATEGORIES[i][1] for i in idx])
    out = rng.choice(idx, size=n, p=p / p.sum())
    out[: len(idx)] = idx[: n]
    return out


def build_merchants(rng: np.random.Generator, n: int, cities: Cities,
                    active_us: np.ndarray) -> Merchants:
    """Shops, ATMs and online merchants; shops mostly in the active US cities, a few abroad."""
    kinds = {name: kind for name, _, _, _, kind in CATEGORIES}
    shop_cats = [c for c in CATEGORY_NAMES if kinds[c] in (STORE, MIXED)]
    online_cats = [c for c in CATEGORY_NAMES if kinds[c] in (ONLINE, MIXED)]
    n_foreign = max(4, round(0.05 * n))
    n_online = max(len(online_cats), round(0.15 * n))
    n_atm = max(2, round(0.08 * n))
    n_shop = n - n_foreign - n_online - n_atm
    if n_shop < len(shop_cats):
        raise ValueError(f"need more merchants (got {n})")

    # Domestic shops and ATMs: every active city first gets the everyday basics (so daily
    # shopping stays local), the rest are spread over the cities by population.
    w = cities.weight[active_us] / cities.weight[active_us].sum()
    basics = [CAT[c] for c in _BASICS if CAT[c] in [CAT[x] for x in shop_cats]]
    n_basic = min(len(active_us) * len(basics), n_shop - len(shop_cats))
    basic_cat = np.tile(basics, len(active_us))[:n_basic]
    basic_city = np.repeat(active_us, len(basics))[:n_basic]
    shop_cat = np.concatenate([basic_cat, _allocate(rng, n_shop - n_basic, shop_cats)])
    atm_cat = np.full(n_atm, CAT["atm"])
    atm_city = rng.choice(active_us, size=n_atm, p=w)
    atm_city[: min(len(active_us), n_atm)] = active_us[: min(len(active_us), n_atm)]
    dom_city = np.concatenate([basic_city, rng.choice(active_us, size=n_shop - n_basic, p=w),
                               atm_city])

    # Foreign shops: at least two in far cities so impossible travel always has a destination.
    foreign = np.arange(cities.n_us, len(cities.lat))
    far = foreign[cities.far[foreign]]
    fw = cities.weight[foreign] / cities.weight[foreign].sum()
    f_city = rng.choice(foreign, size=n_foreign, p=fw)
    f_city[:2] = rng.choice(far, size=2, replace=False)
    f_cat = _allocate(rng, n_foreign, ["restaurant", "grocery", "apparel", "coffee", "gas",
                                       "electronics", "jewelry", "atm"])

    # Online merchants: registered mostly in big US cities, some abroad.
    o_cat = _allocate(rng, n_online, online_cats)
    o_city = rng.choice(cities.n_us, size=n_online, p=cities.weight[: cities.n_us]
                        / cities.weight[: cities.n_us].sum())
    # A few are registered abroad (Canada, Europe, Japan: the popular destinations).
    popular = foreign[cities.weight[foreign] >= 1.0]
    abroad = rng.random(n_online) < 0.06
    o_city[abroad] = rng.choice(popular, size=int(abroad.sum()),
                                p=cities.weight[popular] / cities.weight[popular].sum())

    category = np.concatenate([shop_cat, atm_cat, f_cat, o_cat]).astype(np.int8)
    city = np.concatenate([dom_city, f_city, o_city]).astype(np.int16)
    channel = np.full(n, CARD_PRESENT, dtype=np.int8)
    channel[category == CAT["atm"]] = ATM_CH
    channel[n - n_online:] = ONLINE_CH
    # Shuffle so merchant ids carry no hint of kind or city.
    perm = rng.permutation(n)
    category, city, channel = category[perm], city[perm], channel[perm]
    lat, lon = _jitter(rng, cities.lat[city], cities.lon[city], 9.0)

    physical = np.flatnonzero(channel != ONLINE_CH)
    key = city[physical].astype(np.int64) * N_CAT + category[physical]
    o1 = np.argsort(key, kind="stable")
    o2 = np.argsort(city[physical], kind="stable")
    online = np.flatnonzero(channel == ONLINE_CH)
    o3 = np.argsort(category[online], kind="stable")
    return Merchants(
        ids=np.array([f"merch-{i:06d}" for i in range(n)], dtype=object),
        category=category, channel=channel, city=city, lat=lat, lon=lon,
        country=cities.country[city],
        by_city_cat=physical[o1], city_cat_keys=key[o1],
        by_city=physical[o2], city_keys=city[physical][o2].astype(np.int64),
        online_by_cat=online[o3], online_cat_keys=category[online][o3].astype(np.int64),
    )


@dataclass(frozen=True)
class Cards:
    """Cardholders: home, spending habits, favourite merchants, devices."""

    ids: np.ndarray  # object array of "card-..." strings
    home_city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    rate: np.ndarray  # transactions per day
    weekend: np.ndarray  # weekend activity multiplier
    spend: np.ndarray  # multiplier on category median amounts
    typical: np.ndarray  # typical amount of this card, USD
    prefs: np.ndarray  # (cards, N_CAT) category weights; 0 = never used
    online_share: np.ndarray  # chance of buying online when a category is sold both ways
    night_owl: np.ndarray  # bool: shifted daily rhythm
    fav_shop: np.ndarray  # (cards, N_CAT, 3) merchant index, -1 if none
    fav_online: np.ndarray  # (cards, N_CAT, 3) merchant index, -1 if none
    devices: np.ndarray  # (cards, 2) object array of device ids
    home_ip: np.ndarray  # object array


FAV_SLOT_CDF = np.array([0.6, 0.9, 1.0])  # how often a card goes to its 1st, 2nd, 3rd favourite


def device_ids(rng: np.random.Generator, n: int) -> list[str]:
    return [f"dev-{x:012x}" for x in rng.integers(0, 2**48, size=n).tolist()]


def ip_addresses(rng: np.random.Generator, n: int) -> list[str]:
    q = rng.integers(1, 255, size=(n, 4)).tolist()
    return [f"{a}.{b}.{c}.{d}" for a, b, c, d in q]


def build_cards(rng: np.random.Generator, n: int, cities: Cities, active_us: np.ndarray,
                merchants: Merchants) -> Cards:
    w = cities.weight[active_us] / cities.weight[active_us].sum()
    home = rng.choice(active_us, size=n, p=w).astype(np.int16)
    lat, lon = _jitter(rng, cities.lat[home], cities.lon[home], 15.0)

    rate = np.clip(rng.lognormal(np.log(1.6), 0.7, n), 0.3, 6.0)
    weekend = np.clip(rng.lognormal(0.0, 0.25, n), 0.5, 2.0)
    spend = np.clip(rng.lognormal(0.0, 0.5, n), 0.2, 6.0)

    popularity = np.array([c[1] for c in CATEGORIES])
    prefs = popularity * rng.gamma(2.0, 1.0, size=(n, N_CAT))
    optional = np.array([name not in _ALWAYS_USED for name in CATEGORY_NAMES])
    unused = (rng.random((n, N_CAT)) < 0.45) & optional
    prefs[unused] = 0.0

    # Favourite merchants: for each category, three picks near home (shops) or online.
    u = rng.random((n, N_CAT, 3))
    cats = np.broadcast_to(np.arange(N_CAT), (n, N_CAT))
    near = _nearest_city_with(cities, merchants, home)
    shop_city = np.take_along_axis(near, cats.astype(np.int64), axis=1)
    fav_shop = np.empty((n, N_CAT, 3), dtype=np.int32)
    fav_online = np.empty((n, N_CAT, 3), dtype=np.int32)
    for slot in range(3):
        fav_shop[:, :, slot] = merchants.in_group(
            merchants.by_city_cat, merchants.city_cat_keys,
            (shop_city * N_CAT + cats).ravel(), u[:, :, slot].ravel()).reshape(n, N_CAT)
        fav_online[:, :, slot] = merchants.online(cats.ravel(), u[:, :, slot].ravel()
                                                  ).reshape(n, N_CAT)
    fav_shop[shop_city < 0] = -1
    # A category with no shop nearby and no online seller is one the card never buys.
    prefs[(fav_shop[:, :, 0] < 0) & (fav_online[:, :, 0] < 0)] = 0.0
    prefs /= prefs.sum(axis=1, keepdims=True)
    medians = np.log([c[2] for c in CATEGORIES])
    typical = spend * np.exp(prefs @ medians)

    devs = np.array(device_ids(rng, 2 * n), dtype=object).reshape(n, 2)
    return Cards(
        ids=np.array([f"card-{i:08d}" for i in range(n)], dtype=object),
        home_city=home, lat=lat, lon=lon, rate=rate, weekend=weekend, spend=spend,
        typical=typical, prefs=prefs, online_share=rng.beta(2.0, 4.0, n),
        night_owl=rng.random(n) < 0.06, fav_shop=fav_shop, fav_online=fav_online,
        devices=devs, home_ip=np.array(ip_addresses(rng, n), dtype=object),
    )


MAX_SHOP_KM = 150.0  # people do their in-person shopping within this distance of home


def _nearest_city_with(cities: Cities, merchants: Merchants, home: np.ndarray) -> np.ndarray:
    """For each card, per category, the nearest US city within reach that has a shop of it.

    -1 where no city within MAX_SHOP_KM has one: the card then buys it online or not at all.
    """
    n_us = cities.n_us
    has = np.zeros((n_us, N_CAT), dtype=bool)
    dom = (merchants.channel != ONLINE_CH) & (merchants.city < n_us)
    has[merchants.city[dom], merchants.category[dom]] = True
    lat, lon = np.radians(cities.lat[:n_us]), np.radians(cities.lon[:n_us])
    km = 6371.0 * np.hypot(lat[:, None] - lat[None, :],
                           (lon[:, None] - lon[None, :]) * np.cos(lat[:, None]))
    order = np.argsort(km, axis=1, kind="stable")  # (city, neighbours by distance)
    reachable = np.take_along_axis(km, order, axis=1) <= MAX_SHOP_KM
    table = np.full((n_us, N_CAT), -1, dtype=np.int64)
    for c in range(N_CAT):
        ok = has[order, c] & reachable  # (city, neighbour rank)
        first = ok.argmax(axis=1)
        table[:, c] = np.where(ok.any(axis=1), order[np.arange(n_us), first], -1)
    return table[home]


@dataclass(frozen=True)
class World:
    cities: Cities
    merchants: Merchants
    cards: Cards
    active_us: np.ndarray  # US cities where people live and shop
    foreign_with_shops: np.ndarray  # foreign cities that have merchants (legit trips abroad)
    far_shops: np.ndarray  # physical merchants on another continent (impossible travel)


def build_world(seed: int, n_cards: int, n_merchants: int) -> World:
    """Build the population deterministically from the seed."""
    rng = np.random.default_rng([seed, 0])
    cities = build_cities()
    # Fewer merchants -> fewer cities, so each city still has a dozen or so shops.
    n_active = int(np.clip(n_merchants // 16, 3, cities.n_us))
    active = np.argsort(-cities.weight[: cities.n_us], kind="stable")[:n_active]
    merchants = build_merchants(rng, n_merchants, cities, active)
    cards = build_cards(rng, n_cards, cities, active, merchants)
    phys = merchants.channel != ONLINE_CH
    abroad = phys & (merchants.city >= cities.n_us)
    far = abroad & cities.far[merchants.city] & (merchants.channel == CARD_PRESENT)
    return World(cities, merchants, cards, active,
                 np.unique(merchants.city[abroad]).astype(np.int64), np.flatnonzero(far))
