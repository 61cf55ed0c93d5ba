"""The seed notebook's synthetic corpus: 12 categories x 12 templates, a prefix and a suffix each.

The generator reproduces the notebook's random stream exactly (numpy legacy seeding, the same order of
draws), so `generate_seed_tickets()` returns the very rows of the notebook's ``df`` before its shuffle.
"""

from __future__ import annotations

import numpy as np

TEMPLATES: dict[str, list[str]] = {
    "Hardware": ["My laptop screen is flickering", "Keyboard keys sticking", "Mouse cursor jumps around", "Laptop battery drains quickly", "Monitor displays lines", "Docking station not working", "Laptop overheating", "Printer paper jam", "Webcam black screen", "Hard drive clicking noises", "USB ports not working", "Laptop fan running loud"],
    "Software": ["Microsoft Office keeps crashing", "Unable to install updates", "Application freezes when saving", "VPN client timeout errors", "Browser redirecting to unknown sites", "Software license expired", "Application not compatible", "Outlook not syncing", "Adobe cannot open PDF", "Antivirus blocking app", "Zoom crashes during sharing", "Teams notifications not working"],
    "Network": ["Cannot connect to WiFi", "Internet drops every few minutes", "VPN disconnects randomly", "Cannot access network drives", "Slow internet speed", "Cannot ping internal servers", "Network printer not found", "WiFi password not accepted", "Ethernet not detected", "Cannot access external websites", "Network timeout on portal", "Cannot connect to remote desktop"],
    "Access Management": ["Need access to SharePoint", "Account locked out", "Request database access", "MFA not sending codes", "Cannot reset password", "Need VPN access", "Request JIRA access", "AD group update needed", "SSO not working", "Need elevated permissions", "Need GitHub access", "Cannot access email after transfer"],
    "Email": ["Outlook not receiving emails", "Cannot send large attachments", "Email signature not showing", "Calendar not syncing to mobile", "Shared mailbox not working", "Out of office not activating", "Emails going to spam", "Cannot add email to phone", "Email search not working", "Distribution list not delivering", "Cannot recall email", "Calendar wrong time zone"],
    "Security": ["Suspicious email received", "Computer infected with malware", "Unauthorized purchase made", "Lost laptop with data", "Suspicious login attempt", "Ransomware encrypted files", "USB with data missing", "Unknown software installed", "Badge stolen need deactivation", "Phishing email clicked", "Security vulnerability found", "Data breach needs investigation"],
    "Database": ["SQL query running slow", "Database connection timeout", "Cannot connect to production DB", "Need data restoration", "Queries returning wrong results", "Database storage running low", "Oracle instance not starting", "Need new DB user account", "Replication lag issues", "Table locks preventing updates", "Backup job failing", "Query optimization needed"],
    "General Inquiry": ["How to set up mobile email", "What is password policy", "Where is IT documentation", "How to request hardware", "Software purchase process", "How to connect VPN from home", "Help desk operating hours", "Conference room equipment", "What software is approved", "How to transfer files", "Equipment return process", "How to set up voicemail"],
    "Storage": ["OneDrive not syncing", "Network drive storage full", "Files disappeared from folder", "Cannot access cloud storage", "Need increased mailbox quota", "SharePoint storage limit", "Backup restoration slow", "File version history missing", "Cannot upload to Teams", "Deleted files not in recycle", "File permissions changed", "Storage performance slow"],
    "Printing": ["Printer not in list", "Print jobs stuck in queue", "Color printing not working", "Cannot print double-sided", "Printer driver needs reinstall", "Cannot scan to email", "Print quality poor", "Secure print not releasing", "Need printer for new employee", "Printer showing offline", "PDF printing blank pages", "Print preview different from output"],
    "Backup": ["Backup job failed", "Need file restoration", "Backup taking too long", "Cannot locate backup tapes", "Incremental backup not working", "Backup storage critically low", "Disaster recovery test needed", "Backup agent not running", "Need folder excluded from backup", "Backup report incomplete", "Cloud backup sync issues", "RPO not being met"],
    "Other": ["General IT inquiry", "IT consultation request", "IT services feedback", "Process improvement suggestion", "IT policy question", "IT training request", "System changes inquiry", "Company event IT support", "Asset management question", "IT department contact", "IT guidelines clarification", "Data retention policy question"],
}

# The 12 category names in the order the seed uses for label ids (it sorts them).
CATEGORY_NAMES: list[str] = sorted(TEMPLATES)

PREFIXES = ["", "Urgent: ", "Help: ", "Issue: ", "Problem: ", "Request: "]
SUFFIXES = ["", " This is affecting my work.", " Please help ASAP.", " Been having this issue for days."]


def generate_seed_tickets(seed: int = 42, per_category: int = 400) -> list[dict[str, str]]:
    """Rows of the seed's corpus, in generation order, each with its source ``template``.

    The draw order matters for exact reproduction: the template is drawn first, then the prefix, then the
    suffix, category by category in the dict's order. ``RandomState(seed)`` gives the same stream as the
    notebook's ``np.random.seed(seed)`` followed by ``np.random.choice``.
    """
    rng = np.random.RandomState(seed)
    rows = []
    for category, templates in TEMPLATES.items():
        for _ in range(per_category):
            template = rng.choice(templates)
            prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
            rows.append(
                {
                    "subject": str(template[:60]),
                    "description": f"{prefix}{template}{suffix}",
                    "category": category,
                    "template": str(template),
                }
            )
    return rows
