"""A TinyStories-like story generator, so the project runs on a machine with no data at all.

Each story has a hero and a friend, a place, a problem, a resolution and sometimes a moral,
told in the small vocabulary of TinyStories. Story i of a stream depends only on (stream, i).
Numbers measured on these stories are not TinyStories numbers; the corpus says so loudly.
"""

import random
from dataclasses import dataclass

GENERATOR_VERSION = 1  # bump when the output changes, so token caches rebuild


@dataclass(frozen=True)
class Character:
    name: str
    kind: str  # "girl", "dog", ...
    pronoun: str  # "she", "he", "it"

    @property
    def possessive(self) -> str:
        return {"she": "her", "he": "his", "it": "its"}[self.pronoun]

    @property
    def object(self) -> str:
        return {"she": "her", "he": "him", "it": "it"}[self.pronoun]


HEROES = [
    Character("Lily", "girl", "she"),
    Character("Tom", "boy", "he"),
    Character("Mia", "girl", "she"),
    Character("Ben", "boy", "he"),
    Character("Sue", "girl", "she"),
    Character("Max", "boy", "he"),
    Character("Anna", "girl", "she"),
    Character("Sam", "boy", "he"),
    Character("Lucy", "girl", "she"),
    Character("Tim", "boy", "he"),
    Character("Spot", "dog", "he"),
    Character("Kitty", "cat", "she"),
    Character("Pip", "bird", "he"),
    Character("Daisy", "bunny", "she"),
    Character("Bob", "frog", "he"),
]
TRAITS = [
    "happy",
    "curious",
    "brave",
    "shy",
    "kind",
    "silly",
    "little",
    "cheerful",
    "gentle",
    "busy",
]
PLACES = [
    ("the park", "The sun was warm and the grass was green."),
    ("the garden", "There were red flowers and tall trees."),
    ("the beach", "The waves went up and down on the sand."),
    ("the forest", "The trees were big and the birds sang."),
    ("the farm", "The cows said moo and the hens said cluck."),
    ("the pond", "The water was blue and full of fish."),
    ("the backyard", "There was a swing and a big sandbox."),
    ("the hill", "From the top you could see the whole town."),
]
THINGS = [
    "ball",
    "kite",
    "teddy bear",
    "red hat",
    "toy car",
    "shiny stone",
    "blue cup",
    "doll",
    "balloon",
    "book",
]
FOODS = ["cookies", "apples", "cake", "sandwiches", "berries", "pie"]
FEELINGS_BAD = ["sad", "scared", "worried", "upset"]
MORALS = [
    "Sharing makes everyone happy.",
    "It is good to ask for help when you need it.",
    "Being kind to others is always the right thing to do.",
    "Saying sorry can fix a lot of things.",
    "Friends are there for each other.",
    "It is okay to be scared, but you can still be brave.",
    "Being careful keeps you and your friends safe.",
]


def generate_stories(stream: str, start: int, count: int) -> list[str]:
    """Stories start .. start+count-1 of the named stream (e.g. "0:train")."""
    return [
        story(random.Random(f"{GENERATOR_VERSION}:{stream}:{index}"))
        for index in range(start, start + count)
    ]


def story(rng: random.Random) -> str:
    hero, friend = rng.sample(HEROES, 2)
    place, scenery = rng.choice(PLACES)
    thing = rng.choice(THINGS)
    problem, resolution = rng.choice(PLOTS)(rng, hero, friend, place, thing)
    paragraphs = [
        f"{rng.choice(OPENINGS)}, there was a {rng.choice(TRAITS)} {hero.kind} named {hero.name}. "
        f"{hero.pronoun.capitalize()} loved to play at {place}. {scenery}",
        f"One day, {hero.name} went to {place} with {hero.possessive} friend {friend.name}, "
        f"a {rng.choice(TRAITS)} {friend.kind}. {problem}",
        resolution,
    ]
    if rng.random() < 0.4:
        paragraphs.append(f"{hero.name} learned something that day. {rng.choice(MORALS)}")
    else:
        paragraphs.append(rng.choice(ENDINGS).format(hero=hero.name, friend=friend.name))
    return "\n\n".join(paragraphs)


OPENINGS = ["Once upon a time", "Once", "A long time ago", "In a small town"]
ENDINGS = [
    "From that day on, {hero} and {friend} were best friends.",
    "{hero} and {friend} went home, tired and happy.",
    "They played together until the sun went down.",
    "That night, {hero} smiled in bed and thought about the fun day.",
]


def _lost(
    rng: random.Random, hero: Character, friend: Character, place: str, thing: str
) -> tuple[str, str]:
    spot = rng.choice(
        ["under a big rock", "behind a tree", "in a bush", "next to the water", "in the tall grass"]
    )
    return (
        f"{hero.name} had {hero.possessive} favorite {thing}. But when {hero.pronoun} looked again, "
        f"the {thing} was gone! {hero.name} felt {rng.choice(FEELINGS_BAD)} and started to cry.",
        f'"Do not cry," said {friend.name}. "I will help you look." They looked everywhere. '
        f"At last, {friend.name} found the {thing} {spot}. {hero.name} hugged {friend.name} and said, "
        f'"Thank you! You are a good friend."',
    )


def _share(
    rng: random.Random, hero: Character, friend: Character, place: str, thing: str
) -> tuple[str, str]:
    food = rng.choice(FOODS)
    return (
        f'{hero.name} had a bag of {food}. {friend.name} was hungry and asked, "Can I have some, please?" '
        f'But {hero.name} said, "No, they are mine!" {friend.name} felt {rng.choice(FEELINGS_BAD)} and walked away.',
        f"Soon {hero.name} felt bad. Eating alone was not fun. {hero.pronoun.capitalize()} ran to {friend.name} "
        f'and said, "I am sorry. Let\'s share the {food}." {friend.name} smiled, '
        f"and the {food} tasted even better together.",
    )


def _stuck(
    rng: random.Random, hero: Character, friend: Character, place: str, thing: str
) -> tuple[str, str]:
    height = rng.choice(["up in a tall tree", "on top of the roof of a shed", "high on a shelf"])
    helper = rng.choice(["a kind old man", "a big girl", "Mom", "Dad", "a tall man with a ladder"])
    return (
        f"They were playing with {hero.possessive} {thing} when it flew {height}. "
        f"{hero.name} jumped and jumped, but {hero.pronoun} could not reach it.",
        f'{friend.name} had an idea. "Let\'s ask for help!" They found {helper}, who reached up and got '
        f'the {thing} down. "Thank you!" they said, and they went back to play, more careful this time.',
    )


def _storm(
    rng: random.Random, hero: Character, friend: Character, place: str, thing: str
) -> tuple[str, str]:
    return (
        f"They wanted to have a picnic. But then dark clouds came and it started to rain. "
        f"There was a loud boom of thunder, and {hero.name} was {rng.choice(FEELINGS_BAD)}.",
        f'{friend.name} held {hero.possessive} hand. "We can be brave together," {friend.pronoun} said. '
        f"They ran under a big tree and waited. Soon the rain stopped and a rainbow came out. "
        f"They had their picnic after all, and it was the best picnic ever.",
    )


def _broken(
    rng: random.Random, hero: Character, friend: Character, place: str, thing: str
) -> tuple[str, str]:
    return (
        f"{friend.name} wanted to see the {thing}. {hero.name} did not want to share, and they both pulled. "
        f"Oh no! The {thing} broke. Both of them were {rng.choice(FEELINGS_BAD)}.",
        f'{hero.name} said, "I am sorry I did not share." {friend.name} said, "I am sorry I pulled." '
        f"They took the {thing} home, and {hero.possessive} mom helped them fix it with glue. "
        f"Then they took turns playing with it.",
    )


def _new_friend(
    rng: random.Random, hero: Character, friend: Character, place: str, thing: str
) -> tuple[str, str]:
    stranger = rng.choice(HEROES)
    return (
        f"There they saw a new {stranger.kind} sitting all alone. {stranger.pronoun.capitalize()} looked "
        f"{rng.choice(FEELINGS_BAD)}. {hero.name} was shy and did not know what to say.",
        f'{friend.name} said, "Let\'s say hello." So {hero.name} walked over and said, "Hi! Do you want to '
        f'play with my {thing}?" The {stranger.kind} smiled a big smile. Now they had a new friend to play with.',
    )


PLOTS = [_lost, _share, _stuck, _storm, _broken, _new_friend]
