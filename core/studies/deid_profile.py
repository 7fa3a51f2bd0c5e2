"""DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile: what Table E.1-1 does to each identifying
attribute met in spine CT, MR and radiography. The one home of that table: curation's DICOM de-identifier
(``curation/sources/deid.py``) applies it to files; the model-server scrubber (``core/inference/deidentify.py``)
looks for the values of its person-name and identifier attributes in the text it sends.
"""
from __future__ import annotations

# PS3.15 Table E.1-1, Basic Profile column, for the identifying attributes met in spine CT/MR/radiography.
# X remove, Z zero length (or dummy), D dummy, U replace UID. Compound actions (X/Z, Z/D, X/D ...) use the
# stricter choice that keeps the file valid.
PROFILE: dict[str, str] = {
    "AccessionNumber": "Z", "AcquisitionComments": "X", "AcquisitionContextSequence": "X", "AcquisitionDate": "X",
    "AcquisitionDateTime": "X", "AcquisitionDeviceProcessingDescription": "X", "AcquisitionTime": "X",
    "ActualHumanPerformersSequence": "X", "AdditionalPatientHistory": "X", "AdmissionID": "X", "AdmittingDate": "X",
    "AdmittingDiagnosesCodeSequence": "X", "AdmittingDiagnosesDescription": "X", "AdmittingTime": "X",
    "Allergies": "X", "AuthorObserverSequence": "X", "BranchOfService": "X",
    "CommentsOnThePerformedProcedureStep": "X", "ConcatenationUID": "U", "ContentCreatorName": "Z",
    "ContentDate": "Z", "ContentTime": "Z", "ContributionDescription": "X", "CountryOfResidence": "X",
    "CurrentPatientLocation": "X", "DerivationDescription": "X", "DeviceSerialNumber": "X", "DeviceUID": "U",
    "DigitalSignaturesSequence": "X", "DimensionOrganizationUID": "U", "EthnicGroup": "X", "FiducialUID": "U",
    "FrameComments": "X", "FrameOfReferenceUID": "U", "GantryID": "X", "GeneratorID": "X", "ImageComments": "X",
    "InstanceCreationDate": "X", "InstanceCreationTime": "X", "InstanceCreatorUID": "U",
    "InstitutionAddress": "X", "InstitutionCodeSequence": "X", "InstitutionName": "X",
    "InstitutionalDepartmentName": "X", "InsurancePlanIdentification": "X",
    "IntendedRecipientsOfResultsIdentificationSequence": "X", "IrradiationEventUID": "U", "IssuerOfAdmissionID": "X",
    "IssuerOfPatientID": "X", "LastMenstrualDate": "X", "MedicalAlerts": "X", "MedicalRecordLocator": "X",
    "MilitaryRank": "X", "ModifiedAttributesSequence": "X", "ModifyingDeviceID": "X",
    "NameOfPhysiciansReadingStudy": "X", "NamesOfIntendedRecipientsOfResults": "X", "Occupation": "X",
    "OperatorIdentificationSequence": "X", "OperatorsName": "X", "OriginalAttributesSequence": "X",
    "OtherPatientIDsSequence": "X", "OtherPatientNames": "X", "PatientAddress": "X", "PatientAge": "X",
    "PatientBirthDate": "Z", "PatientBirthName": "X", "PatientBirthTime": "X", "PatientComments": "X",
    "PatientID": "Z", "PatientInsurancePlanCodeSequence": "X", "PatientMotherBirthName": "X", "PatientName": "Z",
    "PatientPrimaryLanguageCodeSequence": "X", "PatientReligiousPreference": "X", "PatientSex": "Z",
    "PatientSize": "X", "PatientState": "X", "PatientTelephoneNumbers": "X", "PatientWeight": "X",
    "PerformedLocation": "X", "PerformedProcedureStepDescription": "X", "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X", "PerformedProcedureStepID": "X", "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X", "PerformedStationAETitle": "X", "PerformedStationName": "X",
    "PerformingPhysicianIdentificationSequence": "X", "PerformingPhysicianName": "X", "PersonAddress": "X",
    "PersonName": "D", "PersonTelephoneNumbers": "X", "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X", "PhysiciansReadingStudyIdentificationSequence": "X",
    "PlateID": "X", "PregnancyStatus": "X", "ProtocolName": "X", "ReasonForStudy": "X",
    "ReasonForTheRequestedProcedure": "X", "ReferencedFrameOfReferenceUID": "U", "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X", "ReferencedSOPInstanceUID": "U",
    "ReferencedStudySequence": "X", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianIdentificationSequence": "X", "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X", "RegionOfResidence": "X", "RequestAttributesSequence": "X",
    "RequestedProcedureDescription": "X", "RequestedProcedureID": "X", "RequestedSOPInstanceUID": "U",
    "RequestingPhysician": "X", "RequestingService": "X", "ResponsibleOrganization": "X", "ResponsiblePerson": "X",
    "ScheduledPerformingPhysicianName": "X", "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepID": "X", "SeriesDate": "X", "SeriesDescription": "X", "SeriesInstanceUID": "U",
    "SeriesTime": "X", "SmokingStatus": "X", "SOPInstanceUID": "U", "SpecialNeeds": "X", "StationName": "X",
    "StorageMediaFileSetID": "X", "StorageMediaFileSetUID": "U", "StudyComments": "X", "StudyDate": "Z",
    "StudyDescription": "X", "StudyID": "Z", "StudyInstanceUID": "U", "StudyTime": "Z",
    "SynchronizationFrameOfReferenceUID": "U", "TextComments": "X", "TextString": "X", "TimezoneOffsetFromUTC": "X",
    "TransactionUID": "U", "UID": "U", "VerifyingObserverName": "D", "VerifyingOrganization": "X",
    "VisitComments": "X", "OtherPatientIDs": "X", "DateOfLastCalibration": "X", "TimeOfLastCalibration": "X",
    "ContrastBolusStartTime": "X", "ContrastBolusStopTime": "X", "ProcedureCodeSequence": "X",
    "PerformedProcedureCodeSequence": "X", "RequestedProcedureCodeSequence": "X", "ScheduledStationName": "X",
    "ScheduledStationAETitle": "X", "DetectorID": "X", "CassetteID": "X", "DataSetTrailingPadding": "X", "ReviewerName": "X",
}
# Patient characteristics kept with retain_patient_characteristics (PS3.15 E.3.9, code 113108).
PATIENT_CHARACTERISTICS = ("PatientAge", "PatientSex", "PatientSize", "PatientWeight", "EthnicGroup",
                           "SmokingStatus", "PregnancyStatus")
