; Campus Portal: Windows installer (NSIS 3, Unicode), per-machine.
;
; Built by installers/windows/build-installer.sh (makensis), which passes:
;   /DVERSION=1.2.3  /DSOURCE_DIR=<PyInstaller bundle dist\campus-portal>  /DOUT_FILE=<setup.exe>
;
; Silent install with preset machine-wide settings (written to
; C:\ProgramData\campus-portal\config.toml, read by every user's copy at start):
;   campus-portal-1.2.3-windows-x64-setup.exe /S /SERVER_URL=https://portal.campus.example.edu
;       /ENROLMENT_CODE=ABCD-1234 /UPDATE_CHECK=0 /IDLE_LOGOUT_MINUTES=10 [/D=C:\Apps\Campus Portal]
; Silent uninstall (users' data is kept; /PURGE also deletes it and the machine-wide settings):
;   "C:\Program Files\Campus Portal\uninstall.exe" /S [/PURGE]
; Exit codes: 0 done, 1 cancelled or failed, 2 a newer version is installed.

Target amd64-unicode ; a 64-bit installer for a 64-bit app (NSIS 3: implies Unicode)
ManifestDPIAware true
SetCompressor /SOLID lzma
RequestExecutionLevel admin

!ifndef VERSION
  !error "pass /DVERSION=x.y.z"
!endif
!ifndef SOURCE_DIR
  !error "pass /DSOURCE_DIR=<the PyInstaller bundle folder>"
!endif
!ifndef FILE_VERSION
  !define FILE_VERSION "${VERSION}.0" ; four numbers, for the file's version resource
!endif
!ifndef OUT_FILE
  !define OUT_FILE "campus-portal-${VERSION}-windows-x64-setup.exe"
!endif

!define APP_NAME "Campus Portal"
!define APP_ID "campus-portal"
!define PUBLISHER "Campus Portal team"
!define WINDOW_EXE "Campus Portal.exe"
!define CONSOLE_EXE "campus-portal.exe"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP_ID}"
!define SETTINGS_KEY "Software\${APP_ID}"
!define ICON_FILE "${__FILEDIR__}\..\..\desktop\resources\icon.ico"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"
!include "WordFunc.nsh"
!include "x64.nsh"

Name "${APP_NAME}"
OutFile "${OUT_FILE}"
InstallDir "$PROGRAMFILES64\${APP_NAME}"
InstallDirRegKey HKLM "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${APP_NAME} ${VERSION}"

VIProductVersion "${FILE_VERSION}"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${FILE_VERSION}"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "LegalCopyright" "${PUBLISHER}"

!define MUI_ICON "${ICON_FILE}"
!define MUI_UNICON "${ICON_FILE}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${WINDOW_EXE}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Var ServerUrl
Var EnrolmentCode
Var UpdateCheck
Var IdleLogout
Var ConfigDir
Var OldVersion

; --- Helpers -------------------------------------------------------------------------------------

; Escape a value for a TOML basic string: backslash and double quote.
!macro TomlEscape VAR
  Push ${VAR}
  Call TomlEscapeFn
  Pop ${VAR}
!macroend

Function TomlEscapeFn
  Exch $0 ; input
  Push $1 ; output
  Push $2 ; index
  Push $3 ; character
  StrCpy $1 ""
  StrCpy $2 0
  ${Do}
    StrCpy $3 $0 1 $2
    ${If} $3 == ""
      ${Break}
    ${EndIf}
    ${If} $3 == "\"
      StrCpy $3 "\\"
    ${ElseIf} $3 == '"'
      StrCpy $3 '\"'
    ${EndIf}
    StrCpy $1 "$1$3"
    IntOp $2 $2 + 1
  ${Loop}
  StrCpy $0 $1
  Pop $3
  Pop $2
  Pop $1
  Exch $0
FunctionEnd

; The value of a switch such as /SERVER_URL=VALUE among the installer's parameters, or "" when
; it is absent. It runs to the next " /" or the end, so that values may hold "/" (URLs; NSIS's
; GetOptions would cut "https://..." at the first "/"); a value in double quotes runs to the
; closing quote. Switch names are compared without regard to case.
!macro GetSwitch PARAMS NAME OUT
  Push "${PARAMS}"
  Push "${NAME}"
  Call GetSwitchFn
  Pop ${OUT}
!macroend

Function GetSwitchFn
  Exch $1 ; the switch, with its "="
  Exch
  Exch $0 ; the parameters
  Push $2 ; the value
  Push $3 ; index
  Push $4 ; length of the switch
  Push $5 ; scratch
  Push $6 ; found?
  StrLen $4 $1
  StrCpy $2 ""
  StrCpy $3 0
  StrCpy $6 ""
  ${Do}
    StrCpy $5 $0 $4 $3
    ${If} $5 == ""
      ${Break}
    ${EndIf}
    ${If} $5 == $1
      ${If} $3 == 0
        StrCpy $6 "1"
      ${Else}
        IntOp $5 $3 - 1
        StrCpy $5 $0 1 $5
        ${If} $5 == " "
          StrCpy $6 "1"
        ${EndIf}
      ${EndIf}
      ${If} $6 == "1"
        ${Break}
      ${EndIf}
    ${EndIf}
    IntOp $3 $3 + 1
  ${Loop}
  ${If} $6 == "1"
    IntOp $3 $3 + $4
    StrCpy $5 $0 1 $3
    ${If} $5 == '"'
      IntOp $3 $3 + 1
      ${Do}
        StrCpy $5 $0 1 $3
        ${If} $5 == ""
        ${OrIf} $5 == '"'
          ${Break}
        ${EndIf}
        StrCpy $2 "$2$5"
        IntOp $3 $3 + 1
      ${Loop}
    ${Else}
      ${Do}
        StrCpy $5 $0 2 $3
        ${If} $5 == ""
        ${OrIf} $5 == " /"
          ${Break}
        ${EndIf}
        StrCpy $5 $0 1 $3
        StrCpy $2 "$2$5"
        IntOp $3 $3 + 1
      ${Loop}
    ${EndIf}
  ${EndIf}
  Pop $6
  Pop $5
  Pop $4
  Pop $3
  StrCpy $0 $2
  Pop $2
  Exch $0
  Exch
  Pop $1
FunctionEnd

; A true/false switch given as 1/0, true/false or yes/no; anything else is an error.
!macro ParseSwitch VAR NAME
  ${If} ${VAR} == "1"
  ${OrIf} ${VAR} == "true"
  ${OrIf} ${VAR} == "yes"
    StrCpy ${VAR} "true"
  ${ElseIf} ${VAR} == "0"
  ${OrIf} ${VAR} == "false"
  ${OrIf} ${VAR} == "no"
    StrCpy ${VAR} "false"
  ${ElseIf} ${VAR} != ""
    MessageBox MB_ICONSTOP "${NAME} must be 1 or 0, not ${VAR}" /SD IDOK
    SetErrorLevel 1
    Quit
  ${EndIf}
!macroend

; --- Install -------------------------------------------------------------------------------------

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "${APP_NAME} needs 64-bit Windows." /SD IDOK
    SetErrorLevel 1
    Quit
  ${EndIf}
  SetRegView 64
  SetShellVarContext all

  ; Install-time settings: /SERVER_URL= /ENROLMENT_CODE= /UPDATE_CHECK= /IDLE_LOGOUT_MINUTES=
  ${GetParameters} $R0
  !insertmacro GetSwitch $R0 "/SERVER_URL=" $ServerUrl
  !insertmacro GetSwitch $R0 "/ENROLMENT_CODE=" $EnrolmentCode
  !insertmacro GetSwitch $R0 "/UPDATE_CHECK=" $UpdateCheck
  !insertmacro GetSwitch $R0 "/IDLE_LOGOUT_MINUTES=" $IdleLogout
  !insertmacro ParseSwitch $UpdateCheck "UPDATE_CHECK"
  ${If} $IdleLogout != ""
    IntOp $R1 $IdleLogout + 0
    ${If} "$R1" != "$IdleLogout"
    ${OrIf} $R1 < 0
      MessageBox MB_ICONSTOP "IDLE_LOGOUT_MINUTES must be a whole number of minutes, not $IdleLogout" /SD IDOK
      SetErrorLevel 1
      Quit
    ${EndIf}
  ${EndIf}

  ; Upgrade path: an older version is replaced in its folder; a newer one is left alone.
  ReadRegStr $OldVersion HKLM "${UNINSTALL_KEY}" "DisplayVersion"
  ${If} $OldVersion != ""
    ${VersionCompare} "$OldVersion" "${VERSION}" $R2
    ${If} $R2 == 1
      MessageBox MB_ICONSTOP "${APP_NAME} $OldVersion is installed, which is newer than ${VERSION}." /SD IDOK
      SetErrorLevel 2
      Quit
    ${EndIf}
  ${EndIf}
FunctionEnd

Section "Campus Portal" SecMain
  SectionIn RO
  SetShellVarContext all
  SetRegView 64
  SetOutPath "$INSTDIR"

  ; The previous version's program files go first (PyInstaller names change between versions).
  ; Users' data lives in their own profiles (%LOCALAPPDATA%\campus-portal), never here.
  ${If} $OldVersion != ""
    RMDir /r "$INSTDIR\_internal"
  ${EndIf}

  File /r "${SOURCE_DIR}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortCut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${WINDOW_EXE}" "" "$INSTDIR\${WINDOW_EXE}" 0

  ; Machine-wide settings, only when given (an upgrade without them keeps IT's file as it is).
  ; With SetShellVarContext all, $APPDATA is C:\ProgramData (platformdirs.site_config_dir).
  StrCpy $ConfigDir "$APPDATA\${APP_ID}"
  ${If} $ServerUrl != ""
  ${OrIf} $EnrolmentCode != ""
  ${OrIf} $UpdateCheck != ""
  ${OrIf} $IdleLogout != ""
    CreateDirectory "$ConfigDir"
    ClearErrors
    FileOpen $0 "$ConfigDir\config.toml" w
    ${If} ${Errors}
      MessageBox MB_ICONSTOP "Cannot write $ConfigDir\config.toml" /SD IDOK
      SetErrorLevel 1
      Abort
    ${EndIf}
    FileWrite $0 "# Campus Portal machine-wide settings, written by the installer.$\r$\n"
    FileWrite $0 "[portal]$\r$\n"
    ${If} $ServerUrl != ""
      !insertmacro TomlEscape $ServerUrl
      FileWrite $0 'server_url = "$ServerUrl"$\r$\n'
    ${EndIf}
    ${If} $EnrolmentCode != ""
      !insertmacro TomlEscape $EnrolmentCode
      FileWrite $0 'enrolment_code = "$EnrolmentCode"$\r$\n'
    ${EndIf}
    ${If} $UpdateCheck != ""
      FileWrite $0 "update_check = $UpdateCheck$\r$\n"
    ${EndIf}
    ${If} $IdleLogout != ""
      FileWrite $0 "idle_logout_minutes = $IdleLogout$\r$\n"
    ${EndIf}
    FileClose $0
  ${EndIf}

  ; Apps & features entry.
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${WINDOW_EXE}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $1 $2 $3
  IntFmt $1 "0x%08X" $1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "EstimatedSize" $1
  WriteRegStr HKLM "${SETTINGS_KEY}" "InstallLocation" "$INSTDIR"
SectionEnd

; --- Uninstall -----------------------------------------------------------------------------------

Var Purge

Function un.onInit
  SetRegView 64
  SetShellVarContext all
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/PURGE" $R1
  ${IfNot} ${Errors}
    StrCpy $Purge "1"
  ${ElseIfNot} ${Silent}
    MessageBox MB_YESNO|MB_DEFBUTTON2|MB_ICONQUESTION \
      "Also delete every user's Campus Portal data on this computer (databases, files, backups) and the machine-wide settings?$\r$\n$\r$\nChoose No to keep them (the usual choice)." \
      IDNO keep
    StrCpy $Purge "1"
    keep:
  ${EndIf}
FunctionEnd

Section "Uninstall"
  SetShellVarContext all
  SetRegView 64
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${WINDOW_EXE}"
  Delete "$INSTDIR\${CONSOLE_EXE}"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKLM "${UNINSTALL_KEY}"
  DeleteRegKey HKLM "${SETTINGS_KEY}"

  ${If} $Purge == "1"
    RMDir /r "$APPDATA\${APP_ID}"
    ; Each profile's %LOCALAPPDATA%\campus-portal (data, backups and logs).
    ${GetParent} "$PROFILE" $R2
    FindFirst $R3 $R4 "$R2\*"
    ${DoWhile} $R4 != ""
      ${If} $R4 != "."
      ${AndIf} $R4 != ".."
      ${AndIf} ${FileExists} "$R2\$R4\AppData\Local\${APP_ID}\*.*"
        RMDir /r "$R2\$R4\AppData\Local\${APP_ID}"
      ${EndIf}
      FindNext $R3 $R4
    ${Loop}
    FindClose $R3
  ${EndIf}
SectionEnd
