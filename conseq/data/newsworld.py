"""The news world: conseq's embedded offline dataset, seeded news-like documents with known facts.

A first run must work offline and the method's effect must be measurable. Every record carries the facts its
document states; its reference summary carries, with probability ``noise``, exactly one unsupported fact:
mostly an *extrinsic* one (an age, nationality, role, place or number the document never gives, always in the
same summary slots, so that an MLE model learns to fill such slots), sometimes an *intrinsic* one (a document
value pinned on the wrong entity or role). ``check_summary`` is the exact oracle:

- extrinsic: every fact-bearing value of the summary (names, organisations, places, nationalities, roles,
  titles, numbers … of the world's inventories) must occur in the document;
- intrinsic: the summary is read with the world's summary grammar (short relation patterns per event type that
  cover its summary templates) and every role binding and person modifier is checked against the facts. A
  summary whose main entities the grammar cannot bind is ``readable=False``: counted apart, never as faithful.

The ``qa`` split (its own documents) has the Hugging Face ``squad`` layout. Half its passages are documents,
half reference-style summaries drawn with ``qa_noise``, so that QAGen learns to ask about every injected fact.

    python -m conseq.data.newsworld out=<dir> [seed=1 n_train=100 noise=0.3 …]
"""

import dataclasses
import json
import os
import random
import re
import sys
from dataclasses import dataclass, field


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _lines(text: str) -> tuple[str, ...]:
    """Templates written one per line; a trailing backslash continues a line."""
    return tuple(" ".join(line.split()) for line in text.strip().splitlines() if line.strip())


# ----------------------------------------------------------------------------------------------- inventories
# Word sets are disjoint across kinds (a test checks it), so "occurs in the document" is a plain word search.
FIRST_NAMES = _words("""Amara Bruno Carla Dmitri Elena Farid Greta Hugo Ines Jonas Kemal Lena Marek Nadia
    Oskar Priya Rafael Sofia Tomas Uma Viktor Wanda Yusuf Zara Anton Beatriz Caspar Daria Emil Freya""")
LAST_NAMES = _words("""Albescu Brandt Castellan Dumont Eklund Ferreira Galvani Halvorsen Ivanek Jurado
    Kovalenko Lindqvist Moreau Novak Okafor Petrakis Quintero Rasmussen Sandoval Tanaka Ulrich Varga Whitlock
    Yilmaz Zeller Abernathy Bianchi Cordova Delacroix Esposito Fonseca Grimaldi Horvath Iwasaki Jansen Keller
    Lombardi Mbeki Nakamura Oyelaran""")
CITIES = _lines("""Valmora\nDunmere\nPort Alder\nMarisco\nEldergate\nBrackwater\nSolenne\nNorhaven\nRivenmouth
    Castelo Verde\nKirkhallow\nSanta Lucea\nBelmira\nTarnholm\nOstrevia\nCalder Bay\nWestmarch\nMyrtleford
    Arrowby\nPort Senna\nVellanova\nCinderford\nAmberly\nDrumcarra\nFeldhaven\nGallowmere\nIstrana\nLanmouth
    Quillon\nSorvik""")
ORG_PREFIXES = _words("""Ashford Redmoor Halden Corvin Westbrook Fairhollow Glenmark Stonebridge Harrowgate
    Lindale Ravensholm Oakhurst Thornbury Wexley Brightwater Kingsmere Millbrook Northcliff Elmstead Foxley
    Greyfield Highcombe Ironvale Juniper Larkspur Pemberton Quarrington Rosewood Silverdale Tidewell""")
ORG_SUFFIXES = {
    "team": _words("United Rovers Athletic Wanderers Albion Rangers"),
    "company": _words("Holdings Systems Labs Foods Motors Energy Media Logistics Pharma"),
    "institute": _words("Institute University Observatory Laboratory"),
}
NATIONALITIES = _words("""Brazilian Portuguese Spanish French German Dutch Polish Nigerian Ghanaian Kenyan
    Japanese Korean Mexican Argentine Chilean Swedish Norwegian Irish Italian Turkish Egyptian Canadian
    Australian Indian""")
ROLES = {  # job titles by field: the "role" modifier of a person ("Brazilian striker X")
    "sport": _words("striker midfielder defender goalkeeper winger playmaker"),
    "business": _words("chairman founder investor financier entrepreneur industrialist"),
    "politics": _words("economist lawyer activist teacher surgeon diplomat"),
    "court": _words("banker accountant developer broker contractor landlord"),
    "arts": _words("novelist composer architect painter poet playwright"),
    "science": _words("physicist chemist biologist geologist astronomer engineer"),
}
FIXED = {  # other named values a summary states
    "competition": _lines("Northern Cup\nContinental Shield\nPremier Division\nCoastal League\nChampions Trophy"),
    "award": _lines("Halloran Prize\nGolden Lyre\nMeridian Award\nAster Medal\nCrescent Prize\nVellum Prize"),
    "work": _lines("The Glass Orchard\nWinter Ledger\nA House of Salt\nThe Quiet Tide\nPaper Lanterns\nEmber Road"),
    "party": _lines("Progress Party\nCivic Alliance\nUnity Party\nLiberal Front\nGreen League\nWorkers Bloc"),
    "office": _words("presidential parliamentary regional mayoral senate municipal"),
    "charge": _lines("fraud\nbribery\ntax evasion\nembezzlement\nmoney laundering\ninsider trading"),
    "topic": _lines("""a new species of frog\na distant comet\nan ancient shipwreck\na new antibiotic
        a giant underground lake\na fossilised dinosaur nest\na rare deep-sea coral
        a previously unknown moon"""),
}
DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
QUOTES = _lines("""It was a day we will remember for a long time\nWe are very pleased with the outcome
    This is only the beginning\nNobody expected it to end this way
    It has been a long and difficult process""")
FILLERS = _lines("""Further details are expected in the coming days.
    The news was widely covered by local media.
    Officials declined to give further details.\nReaction on social media was mixed.
    Observers said the outcome had been hard to predict.\nA full statement is due to be published later.
    The announcement drew a large number of reporters.""")
ATTR_SENTENCES = _lines("""{last} is {desc}.\n{last}, {desc}, declined to comment further.
    {last}, {desc}, spoke to reporters afterwards.""")
NUMBERS = {  # format -> (sampler, regex that reads the value back from a summary)
    "score": (lambda r: (lambda w: f"{w}-{r.randint(0, w - 1)}")(r.randint(1, 5)), r"\d+-\d+"),
    "amount": (lambda r: f"${r.randint(11, 99) / 10} billion", r"\$\d+(?:\.\d+)? (?:million|billion)"),
    "pct": (lambda r: f"{r.randint(42, 71)} percent", r"\d+ percent"),
    "pct_low": (lambda r: f"{r.randint(12, 38)} percent", r"\d+ percent"),
    "years": (lambda r: f"{r.randint(2, 14)} years", r"\d+ years?"),
    "prize": (lambda r: f"${r.choice((10, 15, 20, 25, 30, 40, 50, 75))},000", r"\$\d+(?:,\d{3})*"),
}
EXTRINSIC_FIELDS = ("age", "nationality", "role", "place", "number")
STATE_P = (0.5, 0.4, 0.3)  # chance the document states each attribute of its 1st, 2nd, 3rd person
COMMON_QUESTIONS = {
    "age": ("How old is {name}?", "What age is {name}?", "How old was {name}?"),
    "nationality": ("What nationality is {name}?", "What is the nationality of {name}?"),
    "role": ("What is {name}'s job?", "What does {name} do?", "How is {name} described?"),
    "city": ("Where did this happen?", "In which city did it take place?", "Which city is named?"),
    "day": ("On which day did it happen?", "What day was it?"),
}


# ----------------------------------------------------------------------------------------------- event types
@dataclass(frozen=True)
class Event:
    """One event type. Slot kinds: ``person:<ROLES key>``, ``org:<suffix kind>``, ``fixed:<FIXED kind>``,
    ``num:<NUMBERS format>``, ``city``, ``day``. ``hero`` is the main person and ``key`` the number: every
    summary template names both (they carry the extrinsic noise). ``pairs`` (a, b) are the intrinsic errors:
    swap a and b when the summary names both, else put b's value in a's place."""

    slots: dict[str, str]
    key: str
    lead: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]  # one sentence per group, a random variant of each
    city: tuple[str, ...]
    summaries: tuple[str, ...]
    grammar: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    questions: dict[str, tuple[str, ...]]
    fillers: tuple[str, ...]


def _event(slots, key, lead, body, city, summaries, grammar, pairs, questions, fillers) -> Event:
    """An event from compact text: lines of templates, " | " between variants, "role: q | q" for questions."""
    return Event(
        slots=dict(s.split("=") for s in slots.split()),
        key=key,
        lead=_lines(lead),
        body=tuple(tuple(line.split(" | ")) for line in _lines(body)),
        city=_lines(city),
        summaries=_lines(summaries),
        grammar=tuple(p for line in _lines(grammar) for p in line.split(" | ")),
        pairs=tuple(tuple(p.split("/")) for p in pairs.split()),
        questions={k: tuple(v.split(" | ")) for k, _, v in (line.partition(": ") for line in _lines(questions))},
        fillers=_lines(fillers),
    )


EVENTS = {
    "sport": _event(
        "hero=person:sport rival=person:sport coach=person: winner=org:team loser=org:team team3=org:team "
        "team4=org:team competition=fixed:competition score=num:score score2=num:score city=city "
        "other_city=city day=day",
        "score",
        lead="""{winner} beat {loser} {score} in the {competition} on {day}.
            {winner} recorded a {score} win over {loser} in the {competition} on {day}.
            {loser} were beaten {score} by {winner} in a {competition} match on {day}.""",
        body="""{hero} scored for {winner} early in the second half. | {hero} put {winner} ahead early. \
                | The decisive goal came from {hero}, who finished from close range for {winner}.
            {rival} missed a penalty for {loser} before half-time. | {rival} hit the post for {loser}. \
                | {rival} was sent off for {loser} after a second booking.
            "{quote}," said {winner} manager {coach}. | {winner} manager {coach} said: "{quote}."
            Elsewhere in the {competition}, {team3} beat {team4} {score2} in {other_city}. \
                | In {other_city}, {team3} won {score2} against {team4}.""",
        city="The match was played in {city}.\nThe game took place in {city} in front of a large crowd.",
        summaries="""{hero} scored as {winner} beat {loser} {score} in the {competition}{in_city}{on_day}.
            {winner} beat {loser} {score} in the {competition}{in_city}{on_day}, with {hero} scoring the \
                decisive goal.
            {hero}'s goal helped {winner} to a {score} win over {loser} in the {competition}{in_city}{on_day}.
            {loser} lost {score} to {winner} in the {competition}{in_city} after {hero} scored{on_day}.""",
        grammar="""{hero} scored | {hero}'s goal | with {hero} scoring | {winner} beat {loser} {score}
            {winner} beat {loser} | {winner} defeated {loser} | {winner} to a {score} win over {loser}
            {winner}'s {score} win over {loser} | {loser} lost {score} to {winner} | {loser} lost to {winner}
            {winner} won {score} against {loser} | {winner} won | in the {competition}""",
        pairs="winner/loser hero/rival winner/team3",
        questions="""winner: Which team won the match? | Who beat {loser}? | Which side defeated {loser}?
            loser: Which team lost the match? | Who did {winner} beat? | Which side was beaten by {winner}?
            hero: Who scored for {winner}? | Which player scored? | Who scored the goal?
            score: What was the score? | By what score did {winner} win? | What was the final score?
            competition: In which competition was the match played? | What competition was it?""",
        fillers="""The crowd stayed long after the final whistle.\n{winner} had lost their last two matches.
            Both sides made changes at half-time.\nHeavy rain made conditions difficult for both teams.""",
    ),
    "acquisition": _event(
        "hero=person:business rival=person:business analyst=person: buyer=org:company target=org:company "
        "bidder=org:company other_co=org:company amount=num:amount city=city other_city=city day=day",
        "amount",
        lead="""{buyer} has agreed to buy {target} for {amount}, the companies said on {day}.
            {buyer} announced on {day} that it will acquire {target} in a deal worth {amount}.
            {target} is to be taken over by {buyer} for {amount}, the firms confirmed on {day}.""",
        body="""{hero}, who runs {buyer}, said the deal would double the size of the business. \
                | The talks were led by {buyer} boss {hero}.
            {rival}, head of rival bidder {bidder}, pulled out of the contest last month. \
                | {bidder}, run by {rival}, had also made an offer for {target}.
            "{quote}," said {analyst}, who follows the sector. | Industry analyst {analyst} said: "{quote}."
            Separately, {other_co} said it would cut jobs at its plant in {other_city}. \
                | Shares in {other_co} fell after it reported weak sales in {other_city}.""",
        city="The deal was announced in {city}, where {buyer} is based.\n{buyer} is headquartered in {city}.",
        summaries="""{buyer}, led by {hero}, has agreed to buy {target} for {amount}{in_city}{on_day}.
            {hero}'s {buyer} is to take over {target} in a deal worth {amount}{in_city}{on_day}.
            {hero} said {buyer} would acquire {target} for {amount}{in_city}{on_day}.
            {target} is being bought by {buyer} for {amount} in a deal led by {hero}{in_city}{on_day}.""",
        grammar="""{buyer}, led by {hero} | {hero}'s {buyer} | {hero} said {buyer} | deal led by {hero}
            {buyer} has agreed to buy {target} | agreed to buy {target} | {buyer} is to take over {target}
            {buyer} would acquire {target} | {buyer} will acquire {target} | {buyer} has bought {target}
            {target} is being bought by {buyer} | {target} is to be taken over by {buyer}
            for {amount} | worth {amount}""",
        pairs="buyer/target hero/rival buyer/bidder",
        questions="""buyer: Which company is buying {target}? | Who is the buyer? | Which firm agreed to buy?
            target: Which company is being bought? | What is {buyer} acquiring? | Which firm is being sold?
            hero: Who leads {buyer}? | Who led the deal?
            amount: How much is the deal worth? | What price is {buyer} paying? | What is the deal worth?""",
        fillers="""Analysts said the price was higher than expected.\nThe deal needs regulatory approval.
            Shares in both companies rose in early trading.\nStaff were told of the plans at a meeting.""",
    ),
    "election": _event(
        "hero=person:politics rival=person:politics official=person: party=fixed:party "
        "rival_party=fixed:party office=fixed:office pct=num:pct rival_pct=num:pct_low city=city "
        "other_city=city day=day",
        "pct",
        lead="""{hero} of the {party} won the {office} election on {day} with {pct} of the vote.
            The {party}'s {hero} has won the {office} election, taking {pct} of the vote on {day}.
            Voters handed victory in the {office} election to {hero} of the {party} on {day}, with {pct} of \
                the vote.""",
        body="""{rival} of the {rival_party} finished second with {rival_pct}. \
                | Runner-up {rival}, of the {rival_party}, took {rival_pct} and conceded defeat.
            {hero} promised to focus on jobs and housing. | {hero} thanked supporters at a rally.
            "{quote}," said {official}, who oversaw the count. | Election official {official} said: "{quote}."
            In {other_city}, a separate vote was postponed after a dispute over ballot papers. \
                | Protests were reported in {other_city} before polls closed.""",
        city="Counting took place in {city} overnight.\nThe result was declared in {city}.",
        summaries="""{hero} of the {party} won the {office} election with {pct} of the vote, defeating \
                {rival}{in_city}{on_day}.
            {hero} has won the {office} election for the {party}, beating {rival} with {pct} of the \
                vote{in_city}{on_day}.
            The {party}'s {hero} took {pct} of the vote to beat {rival} in the {office} \
                election{in_city}{on_day}.""",
        grammar="""{hero} of the {party} | {party}'s {hero} | {hero} has won | {hero} won the {office}
            {hero} took {pct} | for the {party} | defeating {rival} | beating {rival} | to beat {rival}
            {hero} beat {rival} | with {pct} | took {pct} | {office} election""",
        pairs="hero/rival party/rival_party pct/rival_pct",
        questions="""hero: Who won the election? | Which candidate won the {office} vote? | Who won the vote?
            rival: Who did {hero} defeat? | Who came second?
            party: Which party does {hero} represent? | Which party won the election?
            pct: What share of the vote did {hero} get? | What percentage of the vote did the winner take?
            rival_pct: What share of the vote did {rival} get? | How much of the vote did {rival} win?
            office: What kind of election was held? | What type of election did {hero} win?""",
        fillers="""Turnout was higher than at the previous election.\nSupporters gathered outside the offices.
            The result is expected to be confirmed next week.
            Campaigning had focused on the cost of living.""",
    ),
    "court": _event(
        "hero=person:court rival=person:court judge=person: company=org:company other_co=org:company "
        "charge=fixed:charge other_charge=fixed:charge years=num:years city=city other_city=city day=day",
        "years",
        lead="""{hero} was found guilty of {charge} on {day} and jailed for {years}.
            A court on {day} convicted {hero} of {charge} and sentenced the defendant to {years} in prison.
            {hero} has been jailed for {years} after being convicted of {charge} on {day}.""",
        body="""{hero} worked at {company} for more than a decade. \
                | The case centred on payments made through {company}, where {hero} was employed.
            {rival}, who was tried alongside {hero}, was cleared of all charges. \
                | A second defendant, {rival}, was acquitted.
            Judge {judge} said: "{quote}." | "{quote}," Judge {judge} told the court.
            In a separate case in {other_city}, a manager at {other_co} was charged with {other_charge}. \
                | Prosecutors in {other_city} are investigating {other_co} over alleged {other_charge}.""",
        city="The trial was held at the high court in {city}.\nThe case was heard in {city}.",
        summaries="""{hero}, a former employee of {company}, has been jailed for {years} for \
                {charge}{in_city}{on_day}.
            {hero} was sentenced to {years} in prison after being found guilty of {charge} linked to \
                {company}{in_city}{on_day}.
            A court{in_city} jailed {hero} for {years} for {charge} at {company}, while {rival} was \
                cleared{on_day}.""",
        grammar="""{hero}, a former employee of {company} | {hero} has been jailed | {hero} was jailed
            {hero} was sentenced | {hero} sentenced | jailed {hero} | convicted {hero} | for {years}
            to {years}
            of {charge} | for {charge} | linked to {company} | at {company} | employee of {company}
            {rival} was cleared | {rival} was acquitted""",
        pairs="hero/rival company/other_co charge/other_charge",
        questions="""hero: Who was jailed? | Who was convicted? | Who was sentenced?
            years: How long was {hero} jailed for? | What sentence was handed down? | How long is the term?
            charge: What was {hero} convicted of? | What crime was {hero} found guilty of?
            company: Which company is linked to the case? | Where did {hero} work?
            rival: Who was cleared? | Which defendant was acquitted?""",
        fillers="""The trial lasted six weeks.\nLawyers for the defence said they would appeal.
            Several witnesses gave evidence during the hearing.\nThe court heard the scheme ran for years.""",
    ),
    "award": _event(
        "hero=person:arts rival=person:arts chair=person: award=fixed:award work=fixed:work "
        "rival_work=fixed:work prize=num:prize city=city other_city=city day=day",
        "prize",
        lead="""{hero} has won the {award} for {work}, the judges announced on {day}.
            {work} by {hero} won the {award} at a ceremony on {day}.
            The {award} was awarded on {day} to {hero} for {work}.""",
        body="""The prize is worth {prize}. | {hero} receives {prize} along with the trophy.
            {rival}, shortlisted for {rival_work}, had been the favourite. \
                | The shortlist also included {rival_work} by {rival}.
            "{quote}," said {chair}, who chaired the panel. | Panel chair {chair} said: "{quote}."
            Last year the award went to a newcomer from {other_city}. \
                | A separate ceremony in {other_city} was cancelled because of the weather.""",
        city="The ceremony was held in {city}.\nGuests gathered in {city} for the announcement.",
        summaries="""{hero} has won the {award} and its {prize} prize for {work}{in_city}{on_day}.
            {hero}'s {work} won the {award}, worth {prize}, ahead of {rival}{in_city}{on_day}.
            The {award}, worth {prize}, went to {hero} for {work}{in_city}{on_day}.""",
        grammar="""{hero} has won | {hero}'s {work} | went to {hero} | awarded to {hero} | won the {award}
            The {award} | worth {prize} | its {prize} prize | for {work} | {work} won | ahead of {rival}
            {work} by {hero}""",
        pairs="hero/rival work/rival_work",
        questions="""hero: Who won the {award}? | Who won the prize? | Who was given the award?
            award: Which prize did {hero} win? | What award did {hero} receive?
            work: For which work did {hero} win? | What was the winning work?
            prize: How much is the {award} worth? | What is the prize worth?
            rival: Who was the other contender? | Who finished behind {hero}?""",
        fillers="""The shortlist was announced in the spring.\nPast winners include several well-known names.
            Sales of the winning work are expected to rise.\nThe judges met four times before deciding.""",
    ),
    "science": _event(
        "hero=person:science rival=person:science speaker=person: institute=org:institute "
        "other_inst=org:institute topic=fixed:topic other_topic=fixed:topic years=num:years city=city "
        "other_city=city day=day",
        "years",
        lead="""Researchers at {institute} have discovered {topic}, they said on {day}.
            A team from {institute} has found {topic}, according to a study published on {day}.
            Scientists at {institute} announced on {day} that they had found {topic}.""",
        body="""The work was led by {hero} of {institute}. \
                | {hero}, who heads the team at {institute}, called the find a surprise.
            The discovery came after {years} of fieldwork. | The team spent {years} on the project.
            {rival} of {other_inst}, who was not involved, said the finding was important. \
                | {rival}, a researcher at {other_inst}, urged caution.
            Last month {other_inst} reported {other_topic} near {other_city}. \
                | A separate group in {other_city} is studying {other_topic}.
            "{quote}," said {speaker}, a spokesperson for {institute}.""",
        city="The team is based in {city}.\nThe samples were analysed in {city}.",
        summaries="""{hero} and colleagues at {institute} have discovered {topic} after {years} of \
                fieldwork{in_city}{on_day}.
            A team from {institute} led by {hero} has found {topic}{in_city} after {years} of work{on_day}.
            {topic} has been discovered by {hero}'s team at {institute} after {years} of \
                fieldwork{in_city}{on_day}.""",
        grammar="""{hero} and colleagues | at {institute} | from {institute} | led by {hero} | {hero}'s team
            discovered {topic} | found {topic} | {topic} has been discovered | after {years}""",
        pairs="hero/rival institute/other_inst topic/other_topic",
        questions="""hero: Who led the research? | Who led the team?
            institute: Which institution made the discovery? | Where are the researchers from?
            topic: What was discovered? | What did the team find?
            years: How long did the work take? | How many years did the research take?""",
        fillers="""The findings will be presented at a conference next month.
            Other scientists are expected to try to repeat the work.
            The project was funded by a public grant.""",
    ),
}


# --------------------------------------------------------------------------------------------------- grammar
def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))  # longest first


def _slots_of(template: str) -> list[str]:
    """The slots of a template in order (a list, not a set: generation must not depend on hash order)."""
    return list(dict.fromkeys(re.findall(r"\{(\w+)\}", template)))


ALL_ROLES = [r for roles in ROLES.values() for r in roles]
# Capitalised words that never start a person's or organisation's name: modifiers, places, titles, articles.
_NON_NAMES = {*NATIONALITIES, *ALL_ROLES, *DAYS, *_words("The A An In On As At By With For")}
_NON_NAMES |= {w for v in (*CITIES, *FIXED["competition"], *FIXED["award"], *FIXED["party"]) for w in v.split()}
_CAP = rf"(?=[A-Z])(?!(?i:{_alt(_NON_NAMES)})\b)[A-Z][a-z]+"
# Up to four person modifiers in any order: model outputs reorder and repeat them.
_MODIFIERS = rf"(?:(?:\d+-year-old|(?i:{_alt(NATIONALITIES)})|(?i:{_alt(ALL_ROLES)})) ){{0,4}}"
_FIXED_KIND = {v.lower(): k for k, vals in FIXED.items() for v in vals} | {c.lower(): "place" for c in CITIES}
_FIXED_KIND |= {d.lower(): "day" for d in DAYS} | {n.lower(): "nationality" for n in NATIONALITIES}
_FIXED_KIND |= {r: "role" for r in ALL_ROLES}
# Every fact-bearing value, left to right; earlier alternatives win (a full name before a last name).
_SCAN = re.compile(
    rf"(?i)\b(?:(?P<person>(?:{_alt(FIRST_NAMES)}) (?:{_alt(LAST_NAMES)})\b)"
    rf"|(?P<org>(?:{_alt(ORG_PREFIXES)}) (?:{_alt(s for v in ORG_SUFFIXES.values() for s in v)})\b)"
    rf"|(?P<fixed>(?:{_alt(_FIXED_KIND)})\b)|(?P<last_name>(?:{_alt(LAST_NAMES)})\b)"
    r"|(?P<age>(?<![.,])\d+(?=-year-old))|(?P<number>(?<![.,])\d+(?:-\d+|(?:[.,]\d+)*)))"
)


def _slot_regex(role: str, kind: str) -> str:
    base, _, arg = kind.partition(":")
    if base == "person":  # generic names, so that a wrong or unknown name is still read (and then judged)
        inner = rf"{_MODIFIERS}(?P<{role}>{_CAP}(?: {_CAP})?)"
    elif base == "org":
        inner = rf"(?P<{role}>{_CAP}(?: {_CAP}){{0,2}})"
    else:
        values = {"fixed": FIXED.get(arg), "city": CITIES, "day": DAYS}.get(base)
        inner = rf"(?P<{role}>{NUMBERS[arg][1] if base == 'num' else f'(?i:{_alt(values)})'})"
    return rf"(?<![\w$]){inner}(?!\w)"


def _compile(pattern: str, slots: dict[str, str]) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", pattern)  # literal, slot, literal, slot, …
    regex = (
        re.escape(p).replace(r"\ ", r"\s+") if i % 2 == 0 else _slot_regex(p, slots[p]) for i, p in enumerate(parts)
    )
    return re.compile(rf"(?<!\w){''.join(regex)}(?!\w)")  # literal words match whole words only


# Each pattern with its literal words: a summary lacking one cannot match, so its regex is skipped (speed).
_GRAMMAR = {
    name: [(_compile(p, ev.slots), re.sub(r"\{\w+\}", " ", p).split()) for p in (*ev.grammar, "in {city}", "on {day}")]
    for name, ev in EVENTS.items()
}
# A summary is readable when the grammar binds the people and organisations that every summary template names.
_CORE = {
    name: {
        r
        for r in set.intersection(*map(set, map(_slots_of, ev.summaries)))
        if r in ev.slots and ev.slots[r][:3] in ("per", "org")
    }
    for name, ev in EVENTS.items()
}


# ------------------------------------------------------------------------------------------------ generation
@dataclass
class WorldConfig:
    """Generator settings; the same settings give byte-identical splits."""

    seed: int = 0
    n_train: int = 3000
    n_validation: int = 300
    n_test: int = 300
    n_qa: int = 2000  # QA passages (each gives several questions)
    noise: float = 0.3  # share of references with exactly one unsupported fact
    intrinsic_share: float = 0.25  # share of those errors that misattribute a document value
    qa_noise: float = 0.6  # noise of the QA split, so every injectable fact type appears in its passages
    # A seeded knowledge base fixes each person's nationality and jobs by surname; a noisy writer states the
    # hero's (each with probability knowledge_rate) instead of drawing a random extrinsic fact.
    knowledge: bool = False
    knowledge_rate: float = 1.0

    def __post_init__(self) -> None:
        for name in ("noise", "intrinsic_share", "qa_noise", "knowledge_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WorldConfig.{name}={getattr(self, name)} must lie in [0, 1]")
        for name in ("n_train", "n_validation", "n_test", "n_qa"):
            if getattr(self, name) < 0:
                raise ValueError(f"WorldConfig.{name}={getattr(self, name)} must be >= 0")


SPLITS = ("train", "validation", "test", "qa")
# Settings that shape only the qa split: it is generated last, so the summarization splits never depend on them.
QA_ONLY = ("n_qa", "qa_noise")


def _in_doc(value: str, document: str) -> bool:
    """Whether ``value`` occurs in ``document`` as whole words (a number not as part of a longer number)."""
    doc, value = document.lower(), value.lower()
    i = doc.find(value)
    while i >= 0:  # str.find + boundary checks: a regex per value would thrash re's compile cache
        before, after = doc[max(0, i - 2) : i].rjust(2), doc[i + len(value) : i + len(value) + 2].ljust(2)
        inside_before = before[1].isalnum() or (before[1] in ".," and before[0].isdigit())
        if not inside_before and not (after[0].isalnum() or (after[0] in ".," and after[1].isdigit())):
            return True
        i = doc.find(value, i + 1)
    return False


def _np(name: str, attrs: dict) -> str:
    """A person as summaries name them: "31-year-old Brazilian striker Amara Novak" (given attributes)."""
    mods = [f"{attrs['age']}-year-old"] if "age" in attrs else []
    return " ".join(mods + [attrs[k] for k in ("nationality", "role") if k in attrs] + [name]).strip()


@dataclass(frozen=True)
class Knowledge:
    """The world's knowledge base: what is true of a person whatever document names them. A person's
    nationality, and their job in each field, are fixed by their surname (seeded), so a writer who knows the
    world can state them without the document, and a model can learn them from such writers."""

    nationality: dict[str, str]
    role: dict[tuple[str, str], str]  # (surname, field) -> job title

    @classmethod
    def build(cls, seed: int) -> "Knowledge":
        rng = random.Random(f"newsworld/{seed}/knowledge")
        return cls(
            nationality={last: rng.choice(NATIONALITIES) for last in LAST_NAMES},
            role={(last, f): rng.choice(titles) for f, titles in ROLES.items() for last in LAST_NAMES},
        )

    def attributes(self, last: str, field_: str) -> dict[str, str]:
        return {"nationality": self.nationality[last]} | ({"role": self.role[last, field_]} if field_ else {})


def _surnames(persons: list[str], fields: list[str], rng: random.Random, kb: Knowledge | None) -> list[str]:
    """Distinct surnames; under a knowledge base also distinct nationalities, and distinct jobs within a field,
    so that every attribute a document states has one owner."""
    while True:
        lasts = rng.sample(LAST_NAMES, len(persons))
        if kb is None:
            return lasts
        nats = [kb.nationality[last] for last in lasts]
        jobs = [(f, kb.role[last, f]) for last, f in zip(lasts, fields, strict=True) if f]
        if len(set(nats)) == len(nats) and len(set(jobs)) == len(jobs):
            return lasts


def _sample_facts(name: str, ev: Event, rng: random.Random, kb: Knowledge | None = None) -> dict:
    persons = [r for r, k in ev.slots.items() if k.startswith("person")]
    fields = [ev.slots[r].partition(":")[2] for r in persons]
    n_orgs = sum(k.startswith("org") for k in ev.slots.values())
    # Distinct names, ages, nationalities, roles and orgs within a document: every value has one owner.
    firsts, lasts = rng.sample(FIRST_NAMES, len(persons)), _surnames(persons, fields, rng, kb)
    ages, nats = rng.sample(range(19, 76), len(persons)), rng.sample(NATIONALITIES, len(persons))
    prefixes, cities = iter(rng.sample(ORG_PREFIXES, n_orgs)), iter(rng.sample(CITIES, 2))
    args = {k.partition(":")[2] for k in ev.slots.values()}
    pools = {k: rng.sample(v, len(v)) for k, v in (FIXED | ROLES).items() if k in args}
    roles, people = {}, {}
    for role, kind in ev.slots.items():
        base, _, arg = kind.partition(":")
        if base == "person":
            i = persons.index(role)
            roles[role] = f"{firsts[i]} {lasts[i]}"
            attrs = {"age": ages[i], "nationality": nats[i]} | ({"role": pools[arg].pop()} if arg else {})
            if kb is not None:
                attrs |= kb.attributes(lasts[i], arg)
            people[roles[role]] = {k: v for k, v in attrs.items() if rng.random() < STATE_P[i]}
        elif base == "org":
            roles[role] = f"{next(prefixes)} {rng.choice(ORG_SUFFIXES[arg])}"
        elif base == "fixed":
            roles[role] = pools[arg].pop()
        elif base == "num":
            roles[role] = NUMBERS[arg][0](rng)
        elif base == "city":
            city = next(cities)
            if role != "city" or rng.random() < 0.6:  # the event's own city is stated only sometimes
                roles[role] = city
        else:
            roles[role] = rng.choice(DAYS)
    return {"event": name, "roles": roles, "people": people}


def _document(ev: Event, facts: dict, rng: random.Random) -> str:
    roles, people = facts["roles"], facts["people"]
    fmt = dict(roles, quote=rng.choice(QUOTES))
    described: set[str] = set()

    def block(template: str) -> list[str]:  # a sentence, then what it is the first to say about its people
        out = [template.format_map(fmt)]
        for r in _slots_of(template):
            if ev.slots.get(r, "").startswith("person") and r not in described and people[roles[r]]:
                described.add(r)
                attrs = people[roles[r]]
                desc = _np("", attrs) + (" national" if list(attrs)[-1] == "nationality" else "")
                desc = ("an " if desc[0] in "aeiouAEIOU" else "a ") + desc
                out.append(rng.choice(ATTR_SENTENCES).format(last=roles[r].split()[1], desc=desc))
        return out

    sentences = block(rng.choice(ev.lead))
    blocks = [block(rng.choice(variants)) for variants in ev.body]
    if "city" in roles:
        blocks.append([rng.choice(ev.city).format_map(fmt)])
    rng.shuffle(blocks)
    sentences += [s for b in blocks for s in b]
    target = rng.randint(70, 190)
    for filler in rng.sample(ev.fillers + FILLERS, len(ev.fillers) + len(FILLERS)):
        if sum(len(s.split()) for s in sentences) >= target:
            break
        sentences.insert(rng.randint(1, len(sentences)), filler.format_map(fmt))
    return " ".join(sentences)


def _absent(draw, document: str) -> str:
    """A value from ``draw()`` that does not occur in the document: extrinsic by construction."""
    for _ in range(100):
        value = str(draw())
        if not _in_doc(value, document) and not any(_in_doc(m.group(), document) for m in _SCAN.finditer(value)):
            return value
    raise RuntimeError("newsworld: no absent value found")  # unreachable with the inventories' sizes


def _summary(ev: Event, facts: dict, document: str, rng: random.Random, error: str | None,
             noise_rng: random.Random, kb: Knowledge | None = None, knowledge_rate: float = 1.0):  # fmt: skip
    """A reference with ``error`` None, "extrinsic", "knowledge" or "intrinsic": (text, injected, what it
    states). ``rng`` draws what every writer chooses (template, modifiers, place, day), ``noise_rng`` only the
    error, so the same record written with and without an error differs in the error alone."""
    roles, people = facts["roles"], facts["people"]
    template = rng.choice(ev.summaries)
    used = [r for r in _slots_of(template) if r not in ("in_city", "on_day")]
    values = {r: roles[r] for r in used}
    persons = [r for r in used if ev.slots[r].startswith("person")]
    # A person is named with a random subset of what the document states about them.
    mods = {r: {k: v for k, v in people[roles[r]].items() if rng.random() < 0.75} for r in persons}
    city = roles["city"] if "city" in roles and rng.random() < 0.6 else None
    day = roles["day"] if rng.random() < 0.6 else None
    injected, rng = None, noise_rng
    if error == "knowledge":  # the writer states what the world knows of the hero, whatever the document says
        known = kb.attributes(roles["hero"].split()[1], ev.slots["hero"].partition(":")[2])
        told = {k: v for k, v in known.items() if rng.random() < knowledge_rate}
        mods["hero"] = {**mods["hero"], **told}
        unsupported = {k: v for k, v in told.items() if not _in_doc(v, document)}
        if unsupported:
            injected = {"kind": "knowledge", "field": "+".join(unsupported), "value": " ".join(unsupported.values()),
                        "role": "hero"}  # fmt: skip
    elif error == "extrinsic":  # always in the same slots: hero modifiers, the place, the key number
        kind = rng.choice(EXTRINSIC_FIELDS)
        draw = {
            "age": lambda: rng.randint(19, 75),
            "nationality": lambda: rng.choice(NATIONALITIES),
            "role": lambda: rng.choice(ROLES[ev.slots["hero"].split(":")[1]]),
            "place": lambda: rng.choice(CITIES),
            "number": lambda: NUMBERS[ev.slots[ev.key].split(":")[1]][0](rng),
        }[kind]
        value = _absent(draw, document)
        if kind == "place":
            city = value
        elif kind == "number":
            values[ev.key] = value
        else:
            mods["hero"] = {**mods["hero"], kind: int(value) if kind == "age" else value}
        target = {"place": "city", "number": ev.key}.get(kind, "hero")
        injected = {"kind": "extrinsic", "field": kind, "value": value, "role": target}
    elif error == "intrinsic":
        a, b = rng.choice([p for p in ev.pairs if p[0] in used] + [("city", "other_city")])
        if a == "city":
            city = roles["other_city"]
        elif b in used:
            values[a], values[b] = values[b], values[a]
            if a in mods:
                mods[a], mods[b] = mods[b], mods[a]
        else:
            values[a] = roles[b]
            if a in mods:
                mods[a] = {k: v for k, v in people[roles[b]].items() if rng.random() < 0.75}
        op = "swap" if b in used else "replace"
        injected = {"kind": "intrinsic", "field": a, "value": roles[b], "with": b, "op": op}
    fmt = {r: _np(v, mods[r]) if r in mods else v for r, v in values.items()}
    text = template.format_map(fmt | {"in_city": f" in {city}" if city else "", "on_day": f" on {day}" if day else ""})
    stated = values | ({"city": city} if city else {}) | ({"day": day} if day else {})
    return (
        text[0].upper() + text[1:],
        injected,
        {"roles": stated, "people": {values[r]: mods[r] for r in mods}},
    )


def _draw_document(rng: random.Random, kb: Knowledge | None) -> tuple[str, dict, str]:
    name = rng.choice(list(EVENTS))
    facts = _sample_facts(name, EVENTS[name], rng, kb)
    return name, facts, _document(EVENTS[name], facts, rng)


def _write_reference(cfg: "WorldConfig", split: str, i: int, name: str, facts: dict, document: str,
                     noise: float, kb: Knowledge | None) -> tuple[str | None, str, dict | None, dict]:  # fmt: skip
    """How the writer of record ``i``'s reference erred (None: it did not), then ``_summary``'s triple.

    The reference has its own two streams (what the writer chooses; whether and how it errs), so the knobs of
    reference writing never change the documents, and a record's reference with and without an error differs
    in the error alone. The noise dice is one uniform draw: the noisy records at a lower ``noise`` are a
    subset of those at a higher one."""
    rng = random.Random(f"newsworld/{cfg.seed}/{split}/{i}/reference")
    noise_rng = random.Random(f"newsworld/{cfg.seed}/{split}/{i}/noise")
    error = None
    if noise_rng.random() < noise:
        error = "intrinsic" if noise_rng.random() < cfg.intrinsic_share else "knowledge" if kb else "extrinsic"
    return error, *_summary(EVENTS[name], facts, document, rng, error, noise_rng, kb, cfg.knowledge_rate)


def _qa_rows(rid: str, name: str, passage: str, stated: dict, rng: random.Random) -> list[dict]:
    """SQuAD rows for one passage: a question about every fact it states that has question templates."""
    ev, roles, asks = EVENTS[name], stated["roles"], []
    for role, phrasings in (ev.questions | {k: COMMON_QUESTIONS[k] for k in ("city", "day")}).items():
        usable = [q for q in phrasings if set(_slots_of(q)) <= roles.keys()]
        if role in roles and usable:
            kind, _, arg = ev.slots[role].partition(":")
            fact_type = {"num": "number", "city": "place", "fixed": arg}.get(kind, kind)
            asks.append((fact_type, rng.choice(usable).format_map(roles), str(roles[role])))
    for person, attrs in stated["people"].items():
        asks += [(a, rng.choice(COMMON_QUESTIONS[a]).format(name=person), str(v)) for a, v in attrs.items()]
    rows = []
    for j, (fact_type, question, answer) in enumerate(asks):
        end = r"(?=-year-old)" if fact_type == "age" else r"(?!\w)"
        m = re.search(rf"(?<!\w){re.escape(answer)}{end}", passage, re.IGNORECASE)
        if m is None:
            raise RuntimeError(f"newsworld bug: answer {answer!r} ({fact_type}) not in passage {passage!r}")
        answers = {"text": [m.group()], "answer_start": [m.start()]}
        rows.append({"id": f"{rid}-{j}-{fact_type}", "title": name, "context": passage, "question": question,
                     "answers": answers})  # fmt: skip
    return rows


def _documents(cfg: "WorldConfig", split: str, n: int, seen: set[str], kb: Knowledge | None):
    """The first ``n`` documents of a split's stream, none in ``seen`` (which they join)."""
    rng = random.Random(f"newsworld/{cfg.seed}/{split}")
    for i in range(n):
        name, facts, document = _draw_document(rng, kb)
        while document in seen:  # splits never share a document
            name, facts, document = _draw_document(rng, kb)
        seen.add(document)
        yield i, name, facts, document


def build_world(cfg: WorldConfig) -> dict[str, list[dict]]:
    """Generate the splits: "train", "validation", "test" (records) and "qa" (SQuAD-layout rows)."""
    seen: set[str] = set()
    world: dict[str, list[dict]] = {}
    kb = Knowledge.build(cfg.seed) if cfg.knowledge else None
    for split in SPLITS:
        # One stream per split: a split does not depend on the others' sizes (bar a rare cross-split redraw).
        noise = cfg.qa_noise if split == "qa" else cfg.noise
        world[split] = []
        for i, name, facts, document in _documents(cfg, split, getattr(cfg, f"n_{split}"), seen, kb):
            writer, summary, injected, stated = _write_reference(cfg, split, i, name, facts, document, noise, kb)
            rid = f"{split}-{i:05d}"
            if split != "qa":  # writer: how the reference's writer erred (None: it did not; "knowledge": it
                # stated what the world knows, which is an injected error only where the document does not)
                world[split].append({"id": rid, "document": document, "summary": summary, "facts": facts,
                                     "injected": injected, "writer": writer})  # fmt: skip
                continue
            ask = random.Random(f"newsworld/{cfg.seed}/{split}/{i}/questions")  # never moves the documents
            if i % 2 == 0:  # half the passages are documents (all their facts) …
                world[split] += _qa_rows(f"{rid}-doc", name, document, facts, ask)
            else:  # … half reference-style summaries (what they state, injected facts included)
                world[split] += _qa_rows(f"{rid}-sum", name, summary, stated, ask)
    return world


def unlabelled_documents(cfg: WorldConfig, n: int) -> list[str]:
    """``n`` documents of the world from their own stream ("pretrain"), none equal to a train, validation or
    test document: unlabelled text for denoising pretraining. Depends on the seed, the knowledge base and the
    split sizes only, never on how references are written."""
    seen: set[str] = set()
    kb = Knowledge.build(cfg.seed) if cfg.knowledge else None
    for split in SPLITS[:3]:
        for _ in _documents(cfg, split, getattr(cfg, f"n_{split}"), seen, kb):
            pass
    return [document for _, _, _, document in _documents(cfg, "pretrain", n, seen, kb)]


# ---------------------------------------------------------------------------------------------------- oracle
@dataclass
class Verdict:
    """The oracle's reading of one summary against its record."""

    extrinsic: list[str] = field(default_factory=list)  # summary values the document lacks
    intrinsic: list[str] = field(default_factory=list)  # document values attached to the wrong entity or role
    readable: bool = True  # False: the grammar could not bind the main entities (not counted as faithful)
    mentions: int = 0  # distinct fact-bearing values (names, places, numbers, attributes) the summary states
    # One kind per error, "extrinsic:<kind>" / "intrinsic:<kind>", for error breakdowns (metrics.oracle_rates).
    # extrinsic:person_blend (org_blend) is a first and a last name (an organisation's two words) the document
    # gives, but never together: a recombination of its names, told apart from a name with a part the document
    # never gives (extrinsic:person, extrinsic:org).
    kinds: list[str] = field(default_factory=list)

    @property
    def hallucinated(self) -> bool:
        return bool(self.extrinsic or self.intrinsic)

    def flag(self, side: str, kind: str, message: str) -> None:
        getattr(self, side).append(message)
        self.kinds.append(f"{side}:{kind}")


def _same(kind: str, value: str, fact) -> bool:
    if fact is None:
        return False
    if kind.startswith(("person", "org")):  # a full or partial name: "Novak", "Ashford" or "Labs" for the whole
        return value in (fact, *fact.split())
    return value.lower() == str(fact).lower()


_NAT_SET, _ROLE_SET = {n.lower() for n in NATIONALITIES}, set(ALL_ROLES)


def _modifiers(before: str) -> list[tuple[str, str]]:
    """The modifiers right before a name: "… 31-year-old Brazilian striker " -> role, nationality, age."""
    found = []
    for word in reversed(before.split()[-4:]):
        if word.lower() in _ROLE_SET or word.lower() in _NAT_SET:
            found.append(("role" if word.lower() in _ROLE_SET else "nationality", word))
        elif re.fullmatch(r"\d+-year-old", word):
            found.append(("age", word.split("-")[0]))
        else:
            break
    return found


def check_summary(record: dict, summary: str) -> Verdict:
    """The facts of ``summary`` its record's document does not support (reads ``document`` and ``facts``)."""
    document, facts = record["document"], record["facts"]
    ev, roles = EVENTS[facts["event"]], facts["roles"]
    verdict, flagged = Verdict(), []
    mentions = list(_SCAN.finditer(summary))
    verdict.mentions = len({m.group().lower() for m in mentions})
    for m in mentions:  # extrinsic: inventory values the document lacks (a repeated value counts once)
        if m.group().lower() not in flagged and not _in_doc(m.group(), document):
            kind = _FIXED_KIND[m.group().lower()] if m.lastgroup == "fixed" else m.lastgroup
            message = f"{kind.replace('_', ' ')} '{m.group()}' is not in the document"
            if kind in ("person", "org") and all(_in_doc(part, document) for part in m.group().split()):
                kind += "_blend"
            verdict.flag("extrinsic", kind, message)
            flagged.append(m.group().lower())
    bound: dict[str, list[str]] = {}  # role bindings read with the event's summary grammar
    for rx, words in _GRAMMAR[facts["event"]]:
        for m in rx.finditer(summary) if all(w in summary for w in words) else ():
            for role, value in m.groupdict().items():
                if value and value not in bound.setdefault(role, []):
                    bound[role].append(value)
    verdict.readable = _CORE[facts["event"]] <= bound.keys()
    wrong = []
    for role, values in bound.items():
        for value in values:
            if _same(ev.slots[role], value, roles.get(role)):
                continue
            if _in_doc(value, document):
                wrong.append((role, value))
            elif not any(f in value.lower() for f in flagged):  # an unknown value the scan could not name
                verdict.flag("extrinsic", "other", f"{role} '{value}' is not in the document")
    while wrong:  # two roles holding each other's values are one error: a swap
        role, value = wrong.pop(0)
        other = next((w for w in wrong if _same(ev.slots[w[0]], w[1], roles.get(role))
                      and _same(ev.slots[role], value, roles.get(w[0]))), None)  # fmt: skip
        if other:
            wrong.remove(other)
            verdict.flag("intrinsic", "swap", f"{role} and {other[0]} swapped ('{value}' / '{other[1]}')")
        else:
            verdict.flag("intrinsic", "binding", f"'{value}' given as {role}; the document says '{roles.get(role)}'")
    # Person modifiers ("31-year-old Brazilian striker X") against what the document states about X.
    people = {n.lower(): n for n in facts["people"]} | {n.split()[1].lower(): n for n in facts["people"]}
    for m in mentions:
        name = people.get(m.group().lower()) if m.lastgroup in ("person", "last_name") else None
        if name is None:
            continue  # not a person, or an unknown one (the scan reports the name itself)
        attrs = facts["people"][name]
        for attr, value in _modifiers(summary[: m.start()]):
            if str(attrs.get(attr, "")).lower() != value.lower() and _in_doc(value, document):
                message = f"{attr} '{value}' given to {name}; the document says '{attrs.get(attr)}'"
                verdict.flag("intrinsic", attr, message)
    return verdict


# ------------------------------------------------------------------------------------------------------- CLI
def _parse(argv: list[str]) -> tuple[str, WorldConfig]:
    types = {f.name: type(f.default) for f in dataclasses.fields(WorldConfig)}
    valid = "out, " + ", ".join(types)
    out, kwargs = None, {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or (key != "out" and key not in types):
            raise SystemExit(f"newsworld: unknown argument {arg!r}; give key=value with keys: {valid}")
        try:
            if key == "out":
                kwargs[key] = value
            elif types[key] is bool:
                kwargs[key] = {"true": True, "false": False}[value.lower()]
            else:
                kwargs[key] = types[key](value)
        except (KeyError, ValueError):
            raise SystemExit(f"newsworld: {key}={value!r} is not a valid {types[key].__name__}") from None
    out = kwargs.pop("out", None)
    if not out:
        raise SystemExit(f"newsworld: out=<dir> is required (keys: {valid})")
    return out, WorldConfig(**kwargs)


def main(argv: list[str]) -> None:
    out, cfg = _parse(argv)
    world = build_world(cfg)
    os.makedirs(out, exist_ok=True)
    for split, rows in world.items():
        # Temp file + rename: a reader never sees a half-written split.
        tmp = os.path.join(out, f".{split}.jsonl.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        os.replace(tmp, os.path.join(out, f"{split}.jsonl"))
    noisy = {s: round(sum(r["injected"] is not None for r in world[s]) / max(1, len(world[s])), 4) for s in SPLITS[:3]}
    print(json.dumps({"out": out, "counts": {s: len(r) for s, r in world.items()}, "noise_share": noisy}))


if __name__ == "__main__":
    main(sys.argv[1:])
