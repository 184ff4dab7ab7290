"""Sentence banks for the sample discharge notes.

All text is invented in the style of MIMIC-IV discharge summaries, with ``___`` where
MIMIC removes names and dates. A filler template is a format string with one
``(low, high, decimals)`` range for each ``{}`` slot, and each slot gets a uniform
number from its range.
"""

from __future__ import annotations

DIAGNOSIS_TEMPLATES = (
    "Patient was treated for {}.",
    "Findings consistent with {}.",
    "{} was managed during this admission.",
    "Assessment notable for {}.",
    "Course complicated by {}, which was addressed by the primary team.",
    "Known history of {}, continued on home regimen.",
    "Workup this admission confirmed {}.",
    "Consulting service agreed with the diagnosis of {}.",
)

PROCEDURE_TEMPLATES = (
    "Underwent {} on hospital day ___.",
    "{} was performed without complications.",
    "Procedure: {}.",
    "Status post {} this admission.",
    "Patient tolerated {} well.",
)

CHIEF_COMPLAINTS = (
    "Shortness of breath", "Chest pain", "Abdominal pain", "Fever", "Altered mental status",
    "Weakness", "Fall", "Nausea and vomiting", "Dizziness", "Cough", "Leg swelling",
    "Confusion", "Bleeding", "Back pain", "Palpitations", "Lethargy", "Diarrhea",
)

SERVICES = ("MEDICINE", "SURGERY", "CARDIOTHORACIC", "NEUROLOGY", "ORTHOPAEDICS", "OMED")
ALLERGIES = (
    "No Known Allergies / Adverse Drug Reactions",
    "Penicillins",
    "Sulfa (Sulfonamide Antibiotics)",
    "Codeine / lisinopril",
    "Patient recorded as having No Known Allergies to Drugs",
)
DISPOSITIONS = ("Home", "Home With Service", "Extended Care", "Home With Service")
FAMILY_HISTORY = (
    "Mother with hypertension. Father with coronary disease in his 60s.",
    "Noncontributory.",
    "No family history of early cardiac death or malignancy.",
    "Sister with breast cancer. Brother with diabetes.",
)

MEDICATIONS = (
    "Aspirin 81 mg PO DAILY", "Atorvastatin 40 mg PO QPM", "Metoprolol Succinate XL 25 mg PO DAILY",
    "Lisinopril 10 mg PO DAILY", "Furosemide 40 mg PO DAILY", "Amlodipine 5 mg PO DAILY",
    "Metformin (Glucophage) 500 mg PO BID", "Insulin Glargine 20 Units Bedtime",
    "Levothyroxine Sodium 75 mcg PO DAILY", "Omeprazole 20 mg PO DAILY",
    "Pantoprazole 40 mg PO Q24H", "Apixaban 5 mg PO BID", "Warfarin 5 mg PO DAILY16",
    "Sertraline 50 mg PO DAILY", "Gabapentin 300 mg PO TID", "Tamsulosin 0.4 mg PO QHS",
    "Docusate Sodium 100 mg PO BID", "Senna 8.6 mg PO BID:PRN constipation",
    "Acetaminophen 650 mg PO Q6H:PRN pain or fever", "Albuterol Inhaler 2 PUFF IH Q4H:PRN wheeze",
    "Tiotropium Bromide 1 CAP IH DAILY", "Prednisone 40 mg PO DAILY Duration: 3 Days",
    "Ceftriaxone 1 gm IV Q24H", "Vancomycin Oral Liquid 125 mg PO Q6H",
    "Potassium Chloride 20 mEq PO DAILY", "Magnesium Oxide 400 mg PO BID",
    "Lactulose 30 mL PO TID", "Rifaximin 550 mg PO BID", "Spironolactone 50 mg PO DAILY",
    "Heparin 5000 UNIT SC TID", "Oxycodone (Immediate Release) 5 mg PO Q4H:PRN pain",
    "Quetiapine Fumarate 25 mg PO QHS", "Folic Acid 1 mg PO DAILY", "Thiamine 100 mg PO DAILY",
    "Carvedilol 6.25 mg PO BID", "Hydralazine 25 mg PO Q8H", "Allopurinol 100 mg PO DAILY",
)

HPI_FILLER = (
    ("Symptoms began approximately {} days prior to presentation.", ((1, 14, 0),)),
    ("In the ED, initial vitals were T {} HR {} BP {}/{} RR {} O2 sat {}% on RA.",
     ((97.0, 101.5, 1), (55, 125, 0), (90, 170, 0), (50, 95, 0), (12, 28, 0), (86, 100, 0))),
    ("Labs in the ED were notable for WBC {} and creatinine {}.", ((3.0, 19.5, 1), (0.6, 4.5, 1))),
    ("The patient reports decreased oral intake over the past {} days.", ((2, 10, 0),)),
    ("Patient was given {} L of IV fluids and admitted for further management.", ((1, 3, 0),)),
    ("Family at bedside notes that the patient has been more tired than usual.", ()),
    ("Denies recent travel, sick contacts or new medications.", ()),
    ("On review of systems, endorses fatigue and poor appetite.", ()),
    ("Patient was seen in clinic {} weeks ago with similar complaints.", ((1, 8, 0),)),
    ("EMS found the patient with a fingerstick glucose of {}.", ((60, 420, 0),)),
)

EXAM_FILLER = (
    ("VS: T {} BP {}/{} HR {} RR {} O2 sat {}% RA.",
     ((97.0, 100.4, 1), (95, 165, 0), (50, 95, 0), (55, 115, 0), (12, 24, 0), (90, 100, 0))),
    ("GENERAL: Alert and oriented, in no acute distress.", ()),
    ("HEENT: Sclera anicteric, MMM, oropharynx clear.", ()),
    ("NECK: Supple, JVP not elevated, no LAD.", ()),
    ("LUNGS: Clear to auscultation bilaterally, no wheezes, rales, rhonchi.", ()),
    ("CV: Regular rate and rhythm, normal S1 S2, no murmurs, rubs, gallops.", ()),
    ("ABDOMEN: Soft, non-tender, non-distended, bowel sounds present.", ()),
    ("EXTREMITIES: Warm, well perfused, {}+ pitting edema to the shins.", ((0, 3, 0),)),
    ("NEURO: CN II-XII intact, strength {}/5 throughout, sensation grossly intact.",
     ((3, 5, 0),)),
    ("SKIN: No rashes or lesions noted.", ()),
    ("Weight on discharge: {} kg.", ((48.0, 135.0, 1),)),
)

LAB_FILLER = (
    ("___ 06:{}AM BLOOD WBC-{} RBC-{} Hgb-{} Hct-{} MCV-{} Plt-{}",
     ((10, 59, 0), (3.0, 18.0, 1), (2.8, 5.6, 2), (7.0, 15.5, 1), (22.0, 46.0, 1),
      (78, 102, 0), (60, 450, 0))),
    ("___ 06:{}AM BLOOD Glucose-{} UreaN-{} Creat-{} Na-{} K-{} Cl-{} HCO3-{} AnGap-{}",
     ((10, 59, 0), (70, 320, 0), (8, 80, 0), (0.5, 5.5, 1), (126, 146, 0), (3.1, 5.6, 1),
      (92, 110, 0), (16, 31, 0), (8, 20, 0))),
    ("___ 06:{}AM BLOOD ALT-{} AST-{} AlkPhos-{} TotBili-{}",
     ((10, 59, 0), (8, 180, 0), (10, 220, 0), (40, 300, 0), (0.2, 4.8, 1))),
    ("___ 06:{}AM BLOOD Calcium-{} Phos-{} Mg-{}",
     ((10, 59, 0), (7.6, 10.4, 1), (2.2, 5.1, 1), (1.4, 2.6, 1))),
    ("___ 07:{}PM BLOOD Lactate-{}", ((10, 59, 0), (0.6, 6.2, 1))),
    ("___ 06:{}AM BLOOD PT-{} PTT-{} INR(PT)-{}",
     ((10, 59, 0), (10.5, 28.0, 1), (24.0, 60.0, 1), (0.9, 3.5, 1))),
    ("___ 06:{}AM BLOOD proBNP-{}", ((10, 59, 0), (80, 18000, 0))),
    ("___ 06:{}AM BLOOD cTropnT-{}", ((10, 59, 0), (0.01, 0.95, 2))),
    ("CXR: No focal consolidation. Cardiomediastinal silhouette within normal limits.", ()),
    ("ECG: Sinus rhythm at {} bpm, normal axis, no acute ST changes.", ((55, 110, 0),)),
    ("TTE: LVEF {}%. Mild mitral regurgitation.", ((20, 65, 0),)),
)

COURSE_FILLER = (
    ("Patient was monitored on telemetry without events.", ()),
    ("Electrolytes were repleted as needed.", ()),
    ("Physical therapy evaluated the patient and recommended discharge home with services.", ()),
    ("Diet was advanced as tolerated.", ()),
    ("Home medications were continued except as noted below.", ()),
    ("Creatinine peaked at {} and improved to {} at discharge.", ((1.2, 4.8, 1), (0.7, 1.9, 1))),
    ("Hemoglobin remained stable around {}.", ((7.5, 13.5, 1),)),
    ("Blood cultures drawn on admission showed no growth at {} days.", ((2, 5, 0),)),
    ("Patient was afebrile for {} hours prior to discharge.", ((24, 72, 0),)),
    ("Pain was controlled with oral medications.", ()),
    ("Social work was consulted for discharge planning.", ()),
    ("Patient was ambulating independently at the time of discharge.", ()),
    ("Total of {} mg IV furosemide given with net negative {} L.", ((40, 320, 0), (1.0, 6.5, 1))),
    ("Blood pressure was well controlled, ranging {}-{} systolic.", ((100, 120, 0), (125, 160, 0))),
    ("Oxygen was weaned to room air by hospital day {}.", ((2, 6, 0),)),
    ("Goals of care were discussed with the patient and the health care proxy.", ()),
    ("The patient was started on a bowel regimen.", ()),
    ("Glucose was controlled with an insulin sliding scale, range {}-{}.",
     ((80, 120, 0), (150, 280, 0))),
    ("Repeat labs on the day of discharge were reviewed and stable.", ()),
    ("The patient denies chest pain, shortness of breath or abdominal pain at discharge.", ()),
)

INSTRUCTIONS = (
    "It was a pleasure taking care of you at ___.",
    "You were admitted to the hospital for evaluation and treatment.",
    "Please take all of your medications as prescribed.",
    "Please weigh yourself every morning and call your doctor if your weight goes up more "
    "than 3 lbs.",
    'Please call your doctor or return to the emergency department if you have "worsening '
    'symptoms", fevers, or chest pain.',
    "We wish you the best, and please follow up with your primary care doctor.",
    'Your doctors called this a "mild" episode, but it is important to keep your follow-up.',
)

CONDITION = (
    "Mental Status: Clear and coherent.\nLevel of Consciousness: Alert and interactive.\n"
    "Activity Status: Ambulatory - Independent."
)

# Word substitutions for the light edits of near-duplicate notes. The keys are common
# words of the filler sentences and rare in ICD titles, so an edit seldom changes the
# evidence of a code.
SUBSTITUTIONS = {
    "stable": "unchanged",
    "unchanged": "stable",
    "monitored": "observed",
    "repleted": "replaced",
    "evaluated": "assessed",
    "recommended": "advised",
    "advanced": "progressed",
    "continued": "maintained",
    "controlled": "managed",
    "reviewed": "discussed",
    "ambulating": "walking",
    "started": "initiated",
    "notes": "reports",
    "reports": "states",
    "Denies": "Reports no",
    "drawn": "obtained",
}
